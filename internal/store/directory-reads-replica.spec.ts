import { describe, expect, it } from "vitest";
import { ReplicaReads } from "./directory-reads-replica.js";
import type { SqlClient, SqlExecutor } from "./sql.js";

/** A database that answers the two position queries as told, and names itself to the read. */
class FakeDb implements SqlClient {
  caughtAfter = 0;
  down = false;
  /** The next list read fails with this SQLSTATE. */
  failListWith: string | undefined;
  cluster = "7001";
  looks = 0;
  constructor(readonly name: string) {}
  async query<T>(sql: string): Promise<{ rows: T[]; rowCount: number }> {
    if (this.down) throw new Error("connect ECONNREFUSED");
    if (sql.includes("pg_control_system")) return { rows: [{ id: this.cluster, db: "chat" } as T], rowCount: 1 };
    if (sql.includes("pg_current_wal_flush_lsn")) return { rows: [{ lsn: "0/10" } as T], rowCount: 1 };
    if (sql.includes("pg_last_wal_replay_lsn")) return { rows: [{ caught: this.looks++ >= this.caughtAfter } as T], rowCount: 1 };
    if (this.failListWith) {
      const err = Object.assign(new Error("canceling statement due to conflict with recovery"), { code: this.failListWith });
      this.failListWith = undefined;
      throw err;
    }
    return { rows: [], rowCount: 0 };
  }
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> { return fn(this); }
  async close() {}
}

function setUp(replicaCount = 1, maxWaitMs = 100) {
  let t = 0;
  const slept: number[] = [];
  const primary = new FakeDb("primary");
  const replicas = Array.from({ length: replicaCount }, (_, i) => new FakeDb(`replica${i}`));
  const reads = new ReplicaReads(primary, replicas, {
    maxWaitMs,
    restMs: 5_000,
    now: () => t,
    sleep: async (ms) => { slept.push(ms); t += ms; },
  });
  const where = () => reads.read(async (db) => (db as FakeDb).name);
  return { primary, replicas, reads, where, slept, advance: (ms: number) => { t += ms; } };
}

describe("ReplicaReads", () => {
  it("reads on a replica that has replayed the primary's position, in turn", async () => {
    const { where } = setUp(2);
    expect([await where(), await where(), await where()]).toEqual(["replica0", "replica1", "replica0"]);
  });

  it("waits for a replica that is behind, looking again at growing intervals", async () => {
    const { replicas, where, slept } = setUp();
    replicas[0]!.caughtAfter = 3;
    expect(await where()).toBe("replica0");
    expect(slept).toEqual([1, 2, 4]);
  });

  it("reads on the primary once the wait would pass maxWaitMs", async () => {
    const { replicas, where, slept } = setUp(1, 20);
    replicas[0]!.caughtAfter = 1_000;
    expect(await where()).toBe("primary");
    expect(slept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(20);
  });

  it("asks the primary once for the reads that began while a question was in flight, never with that question's answer", async () => {
    const answers: Array<(lsn: string) => void> = [];
    const primary: SqlExecutor = {
      query: <T>() => new Promise<{ rows: T[]; rowCount: number }>((resolve) => answers.push((lsn) => resolve({ rows: [{ lsn } as T], rowCount: 1 }))),
    };
    const asked: string[] = [];
    const replica = new FakeDb("replica0");
    const reads = new ReplicaReads({ query: <T>(sql: string) => (sql.includes("pg_control_system") ? replica.query<T>(sql) : primary.query<T>(sql)) }, [replica], { maxWaitMs: 100, restMs: 5_000 });
    const seen = replica.query.bind(replica);
    await reads.checkReachable();
    replica.query = async <T>(sql: string, params?: unknown[]) => {
      if (sql.includes("pg_last_wal_replay_lsn")) asked.push(String(params?.[0]));
      return seen<T>(sql);
    };
    const first = reads.read(async () => "a");
    const later = Array.from({ length: 5 }, () => reads.read(async () => "b"));
    await Promise.resolve();
    expect(answers).toHaveLength(1);
    answers[0]!("0/1");
    await first;
    await new Promise((r) => setImmediate(r));
    // The five that began while the first question was out share a second one.
    expect(answers).toHaveLength(2);
    answers[1]!("0/2");
    expect(await Promise.all(later)).toEqual(["b", "b", "b", "b", "b"]);
    expect(asked).toEqual(["0/1", "0/2", "0/2", "0/2", "0/2", "0/2"]);
  });

  it("refuses at start a replica of another cluster, and leaves out for good one found so at its first read", async () => {
    const { replicas, reads } = setUp(2);
    replicas[1]!.cluster = "9999";
    await expect(reads.checkReachable()).rejects.toThrow(/replica 2 is database chat of cluster 9999, not a standby of the primary's/);
    const late = setUp(1);
    late.replicas[0]!.cluster = "9999";
    late.advance(1e9);
    expect([await late.where(), await late.where()]).toEqual(["primary", "primary"]);
    late.replicas[0]!.cluster = "7001";
    late.advance(1e12);
    expect(await late.where()).toBe("primary");
  });

  it("sends a read the standby cancelled for replay to the primary, without leaving the standby out", async () => {
    const { replicas, reads } = setUp(1);
    replicas[0]!.failListWith = "40001";
    const where = () => reads.read(async (db) => { await db.query("SELECT list"); return (db as FakeDb).name; });
    expect(await where()).toBe("primary");
    expect(await where()).toBe("replica0");
  });

  it("runs a read that fails on the primary once, and does not blame the replica that was behind", async () => {
    const { replicas, reads } = setUp(1, 20);
    replicas[0]!.caughtAfter = 1_000;
    let runs = 0;
    await expect(reads.read(async () => { runs++; throw new Error("the read itself"); })).rejects.toThrow("the read itself");
    expect(runs).toBe(1);
    replicas[0]!.caughtAfter = 0;
    replicas[0]!.looks = 0;
    expect(await reads.read(async (db) => (db as FakeDb).name)).toBe("replica0");
  });

  it("leaves a failing replica out for restMs, then tries it again", async () => {
    const { replicas, where, advance } = setUp(2);
    replicas[0]!.down = true;
    expect(await where()).toBe("primary");
    expect([await where(), await where()]).toEqual(["replica1", "replica1"]);
    replicas[1]!.down = true;
    expect(await where()).toBe("primary");
    expect(await where()).toBe("primary");
    replicas[0]!.down = false;
    advance(5_000);
    expect(await where()).toBe("replica0");
  });
});
