import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allSeqs, Device, directPair, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

let c: TestCluster;
// Sync-log entries kept one second (docs/sync-log-trim.md; 90 days by default): a device away
// for longer than that comes back older than the log.
beforeAll(async () => { c = await startCluster({ SYNC_LOG_RETENTION_S: "1" }); });
afterAll(async () => { await c?.stop(); });

describe("the sync log's trim (docs/sync-log-trim.md)", () => {
  it("a device away for longer than the log keeps is told so before any event, rebuilds from its conversations and history, and follows the log from there", async () => {
    warnOnFailure(() => c);
    const { a, b, conversationId } = await directPair(c);
    for (const t of ["m1", "m2"]) await a.client.send(conversationId, t);
    await waitFor("bob's phone has the first messages", () => b.in(conversationId).length === 2);
    const cursor = b.client.cursor;
    await b.close();
    for (const t of ["m3", "m4"]) await a.client.send(conversationId, t);

    // The phone comes back with its old cursor until the entries after it are gone (the trim's own clock).
    let back: Device | undefined;
    let seen: string[] = [];
    await waitFor("bob's log trimmed past the phone's cursor", async () => {
      await back?.close();
      const d = new Device(c, b.user, b.deviceId, { cursor });
      const order: string[] = [];
      d.client.on("reset", (why) => order.push(`reset:${why}`));
      d.client.on("message", (m) => order.push(`message:${m.text}`));
      await d.connect();
      back = d;
      seen = order;
      return order.includes("reset:trimmed");
    }, { timeoutMs: 60_000, everyMs: 200, seen: () => seen.join(", ") });
    const phone = back!;
    // Told first; the trimmed messages are not replayed as events (they may be gone from the log only in part).
    expect(seen[0]).toBe("reset:trimmed");
    expect(seen.filter((s) => s === "reset:trimmed")).toHaveLength(1);
    expect(phone.client.cursor).toBeGreaterThan(cursor);

    // The full resync: the conversations, then their history, every message there.
    expect((await phone.client.listConversations()).map((x) => x.id)).toContain(conversationId);
    const history = await allSeqs(phone, conversationId);
    expect(history.map((m) => m.seq)).toEqual([1, 2, 3, 4]);

    // And the log goes on from the trim: a new message arrives once, live.
    const sent = await a.client.send(conversationId, "m5");
    await waitFor("the phone has the new message", () => phone.in(conversationId).some((m) => m.seq === sent.seq));
    expect(phone.in(conversationId).filter((m) => m.seq === sent.seq).map((m) => m.text)).toEqual(["m5"]);
    await Promise.all([a.close(), phone.close()]);
  }, 120_000);
});
