import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { device, directPair, newUser, startCluster, steadySender, waitFor, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ SEND_RATE: "1000", SEND_BURST: "1000" }); });
afterAll(async () => { await c?.stop(); });

describe("faults (P4)", () => {
  it("loses no acknowledged message when the chat process is killed mid-conversation", async () => {
    const { a, b, conversationId } = await directPair(c);
    const conv = { id: conversationId };
    const { acked, stop } = steadySender(a, conv.id);
    await waitFor("some traffic", () => acked.length >= 20);
    await c.cluster.stop("chat", "SIGKILL");
    const during = acked.length;
    await c.cluster.start({ name: "chat", service: "chat", env: c.env });
    await waitFor("traffic after restart", () => acked.length >= during + 20);
    await stop();
    const seqs = acked.map((s) => s.seq);
    // Every acknowledged message is stored, once, in a gapless sequence.
    expect(new Set(seqs).size).toBe(seqs.length);
    const stored: number[] = [];
    let from = 0;
    for (;;) {
      const page = await b.client.history(conv.id, { direction: 2, fromSeq: from, limit: 200 });
      stored.push(...page.messages.map((m) => m.seq));
      if (!page.hasMore) break;
      from = page.nextFromSeq;
    }
    expect(stored).toEqual(Array.from({ length: stored.length }, (_, k) => k + 1));
    for (const s of seqs) expect(stored).toContain(s);
    expect(stored.length).toBe(seqs.length);
    // Bob's device saw exactly the stored list.
    await waitFor("bob has everything", () => b.in(conv.id).length === stored.length);
    expect(b.in(conv.id).map((m) => m.seq)).toEqual(stored);
    a.close();
    b.close();
  });

  it("gives a retryable error while the store is down, and resumes after it restarts", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice, undefined, { requestTimeoutMs: 3_000 });
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "before");
    await c.cluster.stop("message-store", "SIGKILL");
    const err = await a.client.request({ $case: "send", value: { conversationId: conv.id, clientMsgId: "during-outage", text: "during", firstSend: false } }).catch((e) => e);
    expect(err.retryable).toBe(true);
    await c.cluster.start({ name: "message-store", service: "message-store", env: c.env });
    const sent = await a.client.send(conv.id, "after");
    expect(sent.seq).toBe(2);
    const page = await a.client.history(conv.id);
    expect(page.messages.map((m) => m.text)).toEqual(["after", "before"]);
    a.close();
  });
});
