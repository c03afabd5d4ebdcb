import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directPair, startCluster, steadySender, waitFor, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ SEND_RATE: "1000", SEND_BURST: "1000" }); });
afterAll(async () => { await c?.stop(); });

describe("graceful drain on SIGTERM", () => {
  it("loses no acknowledged message when chat and then the edge drain under load, and clients move on", async () => {
    const { a, b, conversationId } = await directPair(c);
    const conv = { id: conversationId };
    const { acked, stop } = steadySender(a, conv.id);
    await waitFor("traffic", () => acked.length >= 20);
    // chat drains: what it accepted is written and acknowledged; new sends get a retryable error.
    expect(await c.cluster.stop("chat", "SIGTERM")).toBe(0);
    await c.cluster.start({ name: "chat", service: "chat", env: c.env });
    const afterChat = acked.length;
    await waitFor("traffic after chat restart", () => acked.length >= afterChat + 20);
    // The edge drains: sessions are told SHUTTING_DOWN and closed; clients reconnect and resync.
    const states: string[] = [];
    b.client.on("state", (s) => states.push(s));
    expect(await c.cluster.stop("edge", "SIGTERM")).toBe(0);
    await c.cluster.start({ name: "edge", service: "edge", env: c.env });
    const afterEdge = acked.length;
    await waitFor("traffic after edge restart", () => acked.length >= afterEdge + 20);
    await stop();
    expect(states).toContain("closed");
    // Bob's client reconnects by itself (with backoff) to the restarted edge.
    await waitFor("bob reconnected", () => states[states.length - 1] === "open");
    const seqs = acked.map((s) => s.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => k + 1));
    await waitFor("bob has every message", () => b.in(conv.id).length === seqs.length);
    expect(b.in(conv.id).map((m) => m.seq)).toEqual(seqs);
    expect(b.in(conv.id).map((m) => m.text)).toEqual(Array.from({ length: seqs.length }, (_, k) => `m${k}`));
    a.close();
    b.close();
  });
});
