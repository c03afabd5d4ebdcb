import { ConfigError } from "../config/env.js";
import { type DirectoryReadPlace, type DirectoryReads, recordDirectoryRead } from "./directory-reads.js";
import type { SqlClient, SqlExecutor } from "./sql.js";

export interface ReplicaReadsOptions {
  /** How long a read waits for its replica to replay the primary's position before it runs on the primary instead. */
  maxWaitMs: number;
  /** How long a replica whose query failed is left out (its connection refused, or timed out). */
  restMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** What a hot standby answers a query it cancelled to let replay go on. */
const RECOVERY_CONFLICT = "40001";

/** Longest pause between two looks at a replica's replay position while a read waits. */
const MAX_POLL_MS = 16;

/**
 * Reads on PostgreSQL hot standbys (streaming replication), one after another, with the
 * primary's guarantee: before a read, the primary's flushed WAL position is taken (one
 * trivial query, no table touched), and the read runs on the replica only once it has
 * replayed that far. Every transaction committed before the read began has its commit
 * record at or before that position (a commit returns once its record is flushed: the
 * directory never turns synchronous_commit off), and replay only moves forward, so the
 * read's snapshot, taken after, shows all of them. A replica that has not got there within `maxWaitMs`, or
 * that fails, sends the read to the primary: a lagging replica costs the primary its load
 * back, never a stale answer. `meshchat.directory.reads` counts where each read ran and why.
 */
export class ReplicaReads implements DirectoryReads {
  private next = 0;
  /** The question of the primary's position in flight, and the one that waits for it to return. */
  private asking: Promise<string> | undefined;
  private askingNext: Promise<string> | undefined;
  private readonly restingUntil: number[];
  /** Per replica, once it has been found to be a standby of the primary, in the same database. */
  private readonly checked: boolean[];
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly primary: SqlExecutor,
    private readonly replicas: SqlClient[],
    private readonly options: ReplicaReadsOptions,
  ) {
    this.restingUntil = replicas.map(() => 0);
    this.checked = replicas.map(() => false);
    this.now = options.now ?? (() => performance.now());
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async read<T>(fn: (db: SqlExecutor) => Promise<T>): Promise<T> {
    const i = this.pick();
    if (i === undefined) return this.onPrimary(fn, "replicas_resting");
    const lsn = await this.primaryPosition();
    const replica = this.replicas[i]!;
    try {
      if (!this.checked[i]) await this.check(i);
      if (await this.caughtUp(replica, lsn)) {
        const result = await fn(replica);
        recordDirectoryRead({ servedBy: "replica", reason: "caught_up" });
        return result;
      }
    } catch (err) {
      // A server that is not this primary's standby is left out for good. A read the standby
      // cancelled because replay needed what it held (SQLSTATE 40001, "conflict with recovery")
      // says nothing about the standby. Whatever else failed there rests it a while. Each is
      // asked of the primary (if it was the read itself, it fails there too).
      if (err instanceof ConfigError) {
        this.restingUntil[i] = Infinity;
        return this.onPrimary(fn, "replica_misconfigured");
      }
      if ((err as { code?: string }).code === RECOVERY_CONFLICT) return this.onPrimary(fn, "replica_conflict");
      this.restingUntil[i] = this.now() + this.options.restMs;
      return this.onPrimary(fn, "replica_failed");
    }
    // Outside the try: a read that fails on the primary is the read's failure, not the replica's.
    return this.onPrimary(fn, "replica_behind");
  }

  /**
   * Checks every replica that answers now, so that a URL naming another cluster, or another
   * database, stops the service at start (a ConfigError) instead of serving its lists. Replicas
   * that do not answer are checked before their first read.
   */
  async checkReachable(): Promise<void> {
    await Promise.all(this.replicas.map(async (_, i) => {
      try {
        await this.check(i);
      } catch (err) {
        if (err instanceof ConfigError) throw err;
      }
    }));
  }

  /**
   * A standby of the primary shares its system identifier (pg_basebackup copies it; initdb
   * makes a new one), and must be connected to the database of the same name: the position
   * check alone would pass for any standby of the cluster, whatever it holds.
   */
  private async check(i: number): Promise<void> {
    const ask = `SELECT s.system_identifier::text AS id, current_database() AS db FROM pg_control_system() s`;
    const [[p], [r]] = await Promise.all([this.primary, this.replicas[i]!].map(async (db) => (await db.query<{ id: string; db: string }>(ask)).rows));
    if (p!.id !== r!.id || p!.db !== r!.db) {
      throw new ConfigError(`POSTGRES_REPLICA_URLS: replica ${i + 1} is database ${r!.db} of cluster ${r!.id}, not a standby of the primary's database ${p!.db} (cluster ${p!.id})`);
    }
    this.checked[i] = true;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.replicas.map((r) => r.close()));
  }

  /**
   * The primary's flushed position, asked after the caller began: reads that arrive while one
   * question is in flight share the next one, sent when it returns (the one in flight may have
   * been answered before their writes committed). So the primary answers about one question a
   * round trip, however many lists run at once.
   */
  private primaryPosition(): Promise<string> {
    if (!this.asking) {
      const asked = this.primary.query<{ lsn: string }>(`SELECT pg_current_wal_flush_lsn()::text AS lsn`).then((r) => r.rows[0]!.lsn);
      this.asking = asked.finally(() => { this.asking = undefined; });
      return this.asking;
    }
    this.askingNext ??= this.asking.catch(() => {}).then(() => {
      this.askingNext = undefined;
      return this.primaryPosition();
    });
    return this.askingNext;
  }

  /** The next replica in turn that is not resting, or undefined. */
  private pick(): number | undefined {
    const t = this.now();
    for (let k = 0; k < this.replicas.length; k++) {
      const i = (this.next + k) % this.replicas.length;
      if (this.restingUntil[i]! <= t) {
        this.next = i + 1;
        return i;
      }
    }
    return undefined;
  }

  private async caughtUp(replica: SqlExecutor, lsn: string): Promise<boolean> {
    const deadline = this.now() + this.options.maxWaitMs;
    for (let pause = 1; ; pause = Math.min(pause * 2, MAX_POLL_MS)) {
      // NULL on a server that is not a standby (a promoted one has left the primary's history): not caught up.
      const [r] = (await replica.query<{ caught: boolean | null }>(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught`, [lsn])).rows;
      if (r?.caught === true) return true;
      if (this.now() + pause > deadline) return false;
      await this.sleep(pause);
    }
  }

  private async onPrimary<T>(fn: (db: SqlExecutor) => Promise<T>, reason: Extract<DirectoryReadPlace, { servedBy: "primary" }>["reason"]): Promise<T> {
    recordDirectoryRead({ servedBy: "primary", reason });
    return fn(this.primary);
  }
}
