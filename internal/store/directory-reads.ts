import { metrics, type Counter } from "@opentelemetry/api";
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

/** Where a directory read ran: a standby that had caught up, or the primary (and why). */
export type DirectoryReadPlace =
  | { servedBy: "replica"; reason: "caught_up" }
  | { servedBy: "primary"; reason: "no_replicas" | "replica_behind" | "replica_failed" | "replica_conflict" | "replica_misconfigured" | "replicas_resting" };

let reads: Counter | undefined;

/** Counts one conversation list in meshchat.directory.reads, every series with both labels. */
export function recordDirectoryRead(place: DirectoryReadPlace): void {
  reads ??= metrics.getMeter("meshchat").createCounter("meshchat.directory.reads", {
    description: "Directory reads (conversation lists) by where they ran (replica, primary) and why: caught_up (on a replica), no_replicas, replica_behind, replica_failed, replica_conflict, replica_misconfigured, replicas_resting (on the primary)",
  });
  reads.add(1, { "meshchat.read.served_by": place.servedBy, "meshchat.read.reason": place.reason });
}
