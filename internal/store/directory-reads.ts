import type { SqlExecutor } from "./sql.js";

/**
 * Where the directory's heaviest read runs: the conversation list, asked at every connect
 * (docs/scaling.md, "Storage"). A read through it sees every write committed before it began,
 * wherever it runs, so a device that has just joined a group finds it in its list.
 */
export interface DirectoryReads {
  read<T>(fn: (db: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
