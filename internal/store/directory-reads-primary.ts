import { type DirectoryReads, recordDirectoryRead } from "./directory-reads.js";
import type { SqlExecutor } from "./sql.js";

/** Every read on the primary: the embedded stores, and a deployment with no replica named. */
export class PrimaryReads implements DirectoryReads {
  constructor(private readonly primary: SqlExecutor) {}

  read<T>(fn: (db: SqlExecutor) => Promise<T>): Promise<T> {
    recordDirectoryRead({ servedBy: "primary", reason: "no_replicas" });
    return fn(this.primary);
  }

  async close(): Promise<void> {}
}
