import { metrics, type Counter } from "@opentelemetry/api";
import type { DirectoryReads } from "./directory-reads.js";
import type { SqlExecutor } from "./sql.js";

/** Every read on the primary: the embedded stores, and a deployment with no replica named. */
export class PrimaryReads implements DirectoryReads {
  private readonly reads: Counter;

  constructor(private readonly primary: SqlExecutor) {
    this.reads = directoryReadsCounter();
  }

  read<T>(fn: (db: SqlExecutor) => Promise<T>): Promise<T> {
    this.reads.add(1, { "meshchat.read.served_by": "primary", "meshchat.read.reason": "no_replicas" });
    return fn(this.primary);
  }

  async close(): Promise<void> {}
}

/** Directory reads (conversation lists) by where they ran and why (every series carries both labels). */
export function directoryReadsCounter(): Counter {
  return metrics.getMeter("meshchat").createCounter("meshchat.directory.reads", {
    description: "Directory reads (conversation lists) by where they ran (replica, primary) and why: caught_up (on a replica), no_replicas, replica_behind, replica_failed, replica_conflict, replica_misconfigured, replicas_resting (on the primary)",
  });
}
