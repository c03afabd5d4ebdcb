import type cassandra from "cassandra-driver";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { LogLeader } from "./cassandra-leader.js";

/**
 * A Cassandra client that answers the leader's bookkeeping statements at once (an empty
 * keyspace: no fence, no marks, no intents) and holds every other write until the test fails
 * it. The leader's interleavings with its callers are what these tests drive, not Cassandra.
 */
function fakeClient() {
  const held: Array<(err: Error) => void> = [];
  const result = (row?: Record<string, unknown>) => ({ first: () => row, wasApplied: () => true, rows: row ? [row] : [], pageState: null });
  const client = {
    execute(query: string): Promise<unknown> {
      if (/^(SELECT|INSERT INTO \S+\.log_(leader|closed|intents|marks))/.test(query)) return Promise.resolve(result());
      return new Promise((_, reject) => held.push(reject));
    },
  };
  return { client: client as unknown as cassandra.Client, failHeld: (err: Error) => { for (const r of held.splice(0)) r(err); } };
}

async function leaderWithWriteInFlight() {
  const fake = fakeClient();
  const leader = await LogLeader.takeOver(fake.client, "ks", { legacyHead: async () => 0, onFailed: () => {} });
  if (!(leader instanceof LogLeader)) throw new Error("the fake keyspace has no other leader");
  const h = await leader.head("k");
  h.assigned = 1;
  leader.submit([{ query: "UPDATE ks.messages", params: [] }], new Map([["k", 1]])).catch(() => {});
  return { leader, fake };
}

/** Runs every job queued so far, and those they queue, and the timers due now. */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("LogLeader", () => {
  // A caller that asks for a settled head just as the leader fails must get UNAVAILABLE, not
  // wait for a tick that will never come: whichever job the failure lands on.
  it("settled() rejects when the leader fails while a write is in flight, whatever job the failure lands on", async () => {
    for (let jobs = 0; jobs < 8; jobs++) {
      const { leader, fake } = await leaderWithWriteInFlight();
      await drain();
      fake.failHeld(new Error("cassandra went away"));
      for (let i = 0; i < jobs; i++) await Promise.resolve();
      const settled = leader.settled("k").then(() => "settled", (err: { code?: ErrorCode }) => err.code);
      let outcome: unknown = "still waiting";
      void settled.then((o) => { outcome = o; });
      await drain();
      expect(leader.failed?.kind, `failure after ${jobs} jobs`).toBe("error");
      expect(outcome, `failure after ${jobs} jobs`).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    }
  });

  // A caller that awaited head() and then hands out positions must not find the heads gone
  // (a TypeError, INTERNAL, which clients do not retry): it is refused, retryable.
  it("loaded() answers a head loaded before, and UNAVAILABLE once the leader has failed", async () => {
    const { leader, fake } = await leaderWithWriteInFlight();
    expect(leader.loaded("k").assigned).toBe(1);
    fake.failHeld(new Error("cassandra went away"));
    await drain();
    expect(() => leader.loaded("k")).toThrowError(expect.objectContaining({ code: ErrorCode.ERROR_CODE_UNAVAILABLE }));
  });

  // The fence read keeps a deposed leader from answering; while the election's lease vouches that
  // no other leader can exist yet, it is a round trip per tick for nothing.
  it("reads its fence after a tick's intent only once its lease no longer vouches, and is deposed by what it reads", async () => {
    let heldUntil = performance.now() + 60_000;
    let fenceEpoch = 1;
    let created = false;
    const queries: string[] = [];
    const client = {
      execute(query: string): Promise<unknown> {
        queries.push(query);
        // No fence until the takeover creates it (epoch 1); then whatever the test says it shows.
        if (/INSERT INTO \S+\.log_leader/.test(query)) created = true;
        const row = created && /^SELECT epoch FROM \S+\.log_leader/.test(query) ? { epoch: fenceEpoch } : undefined;
        return Promise.resolve({ first: () => row, wasApplied: () => true, rows: row ? [row] : [], pageState: null });
      },
    } as unknown as cassandra.Client;
    const failures: string[] = [];
    const leader = await LogLeader.takeOver(client, "ks", { legacyHead: async () => 0, onFailed: (f) => failures.push(f.kind), heldUntil: () => heldUntil });
    if (!(leader instanceof LogLeader)) throw new Error("the fake keyspace has no other leader");
    const fenceReads = () => queries.filter((q) => /^SELECT epoch FROM \S+\.log_leader/.test(q)).length;
    const readsAtStart = fenceReads();
    const tick = async (v: number) => {
      const h = await leader.head("k");
      h.assigned = v;
      return leader.submit([{ query: "UPDATE ks.messages", params: [] }], new Map([["k", v]]));
    };
    await tick(1);
    await tick(2);
    expect(fenceReads() - readsAtStart).toBe(0);
    heldUntil = performance.now() - 1;
    await tick(3);
    expect(fenceReads() - readsAtStart).toBe(1);
    // Another leader moved the fence meanwhile: the next tick is refused, retryable, and the leader is deposed.
    fenceEpoch = 2;
    const refused = await tick(4).then(() => undefined, (err: { code?: ErrorCode }) => err.code);
    expect(refused).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(failures).toEqual(["deposed"]);
  });

  // A change in place (an edit) overwrites cells of a committed row: what puts them back must be
  // durable, and the leader still leading, before those cells change; a deposed leader changes none.
  it("writes a tick's restore record and checks its fence before the tick's rows, removes it once the tick commits, and writes no row once deposed", async () => {
    let fenceEpoch = 1;
    let created = false;
    const queries: string[] = [];
    const client = {
      execute(query: string): Promise<unknown> {
        queries.push(query.split(" ").slice(0, 3).join(" "));
        if (/INSERT INTO \S+\.log_leader/.test(query)) created = true;
        const row = created && /^SELECT epoch FROM \S+\.log_leader/.test(query) ? { epoch: fenceEpoch } : undefined;
        return Promise.resolve({ first: () => row, wasApplied: () => true, rows: row ? [row] : [], pageState: null });
      },
    } as unknown as cassandra.Client;
    const leader = await LogLeader.takeOver(client, "ks", { legacyHead: async () => 0, onFailed: () => {} });
    if (!(leader instanceof LogLeader)) throw new Error("the fake keyspace has no other leader");
    const change = (text: string) => leader.submit([{ query: "UPDATE ks.messages SET body", params: [text] }], new Map(), [{ query: "UPDATE ks.messages SET body", params: ["before"] }]);
    queries.length = 0;
    await change("after");
    // Once committed, the record goes before the answer (it holds the text the change replaced).
    expect(queries).toEqual(["INSERT INTO ks.log_restore", "SELECT epoch FROM", "UPDATE ks.messages SET", "INSERT INTO ks.log_intents", "SELECT epoch FROM", "DELETE FROM ks.log_restore"]);
    fenceEpoch = 2;
    queries.length = 0;
    expect(await change("never").then(() => undefined, (err: { code?: ErrorCode }) => err.code)).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(queries).toEqual(["INSERT INTO ks.log_restore", "SELECT epoch FROM"]);
  });
});
