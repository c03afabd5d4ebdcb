import { describe, expect, it } from "vitest";
import type { AppendRequest, AppendResponse, AppendGroupResult } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { Sequencer } from "./sequencer.js";

/** An in-memory store with the real store's rules: base_seq check and client-id dedupe. */
class FakeStore {
  heads = new Map<string, number>();
  ids = new Map<string, number>();
  calls: AppendRequest[] = [];
  failNext = false;
  async lastSeq(id: string) { return this.heads.get(id) ?? 0; }
  async append(req: AppendRequest): Promise<AppendResponse> {
    this.calls.push(req);
    await new Promise((r) => setTimeout(r, 5));
    if (this.failNext) { this.failNext = false; throw new Error("store down"); }
    const results: AppendGroupResult[] = req.groups.map((g) => {
      const head = this.heads.get(g.conversationId) ?? 0;
      if (head !== g.baseSeq) return { conversationId: g.conversationId, error: ErrorCode.ERROR_CODE_CONFLICT, messages: [], lastSeq: head };
      let seq = head;
      const messages = g.messages.map((m) => {
        const key = `${g.conversationId}/${m.senderId}/${m.clientMsgId}`;
        const dup = this.ids.get(key);
        if (dup) return { message: { conversationId: g.conversationId, seq: dup, senderId: m.senderId, senderDeviceId: "", clientMsgId: m.clientMsgId, text: m.text, sentAtMs: 0 }, duplicate: true, positions: [] };
        this.ids.set(key, ++seq);
        return { message: { conversationId: g.conversationId, seq, senderId: m.senderId, senderDeviceId: "", clientMsgId: m.clientMsgId, text: m.text, sentAtMs: 0 }, duplicate: false, positions: [] };
      });
      this.heads.set(g.conversationId, seq);
      return { conversationId: g.conversationId, error: ErrorCode.ERROR_CODE_UNSPECIFIED, messages, lastSeq: seq };
    });
    return { results };
  }
}

const msg = (id: string) => ({ senderId: "u", senderDeviceId: "d", clientMsgId: id, text: id, sentAtMs: 0 });

describe("Sequencer", () => {
  it("numbers sends in arrival order and batches them into few store writes", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["u"], { maxInFlight: 1, maxBatchMessages: 1000 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => seq.submit("c", msg(`m${i}`))));
    expect(results.map((r) => r.appended.message!.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(store.calls.length).toBeLessThan(10);
  });

  it("splits a batch by bytes, so no store write nears gRPC's limit and small sends are not held behind large ones", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["u"], { maxInFlight: 1, maxBatchMessages: 2_000, maxBatchBytes: 10_000 });
    const large = (id: string) => ({ ...msg(id), text: "é".repeat(2_000) }); // 4,000 bytes each
    // Forty large sends in one conversation and one small send in each of two others, all at once.
    const sends = [
      ...Array.from({ length: 40 }, (_, i) => seq.submit("big", large(`b${i}`))),
      seq.submit("small1", msg("s1")),
      seq.submit("small2", msg("s2")),
    ];
    const results = await Promise.all(sends);
    expect(results.slice(0, 40).map((r) => r.appended.message!.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(results.slice(40).map((r) => r.appended.message!.seq)).toEqual([1, 1]);
    const requestBytes = store.calls.map((c) => c.groups.reduce((n, g) => n + g.messages.reduce((k, m) => k + Buffer.byteLength(m.text), 0), 0));
    expect(Math.max(...requestBytes)).toBeLessThanOrEqual(10_000);
    // The small sends rode in the second write (the first left with the only send queued then), not after every large one.
    expect(store.calls.findIndex((c) => c.groups.some((g) => g.conversationId === "small2"))).toBeLessThanOrEqual(1);
    // Every send made it, each in one write: nothing was refused for the size of the batch it shared.
    expect(store.calls.flatMap((c) => c.groups.flatMap((g) => g.messages.map((m) => m.clientMsgId))).sort()).toEqual([...Array.from({ length: 40 }, (_, i) => `b${i}`), "s1", "s2"].sort());
    // A single send larger than the budget still goes, alone.
    const huge = await seq.submit("big", { ...msg("h"), text: "x".repeat(20_000) });
    expect(huge.appended.message!.seq).toBe(41);
    expect(store.calls[store.calls.length - 1]!.groups.flatMap((g) => g.messages)).toHaveLength(1);
  });

  it("reloads the head and retries after a CONFLICT (another owner wrote)", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["u"]);
    await seq.submit("c", msg("a"));
    store.heads.set("c", 5); // another owner appended 4 more
    const r = await seq.submit("c", msg("b"));
    expect(r.appended.message!.seq).toBe(6);
  });

  it("rejects the batch when the store fails, then recovers without a gap", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["u"]);
    await seq.submit("c", msg("a"));
    store.failNext = true;
    await expect(seq.submit("c", msg("b"))).rejects.toThrow("store down");
    const again = await seq.submit("c", msg("b"));
    expect(again.appended.message!.seq).toBe(2);
  });

  it("runs exclusive work with no append of that conversation in flight", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["u"]);
    const order: string[] = [];
    const sends = [seq.submit("c", msg("1")).then(() => order.push("send1"))];
    const excl = seq.exclusive("c", async () => { order.push("exclusive"); });
    sends.push(seq.submit("c", msg("2")).then(() => order.push("send2")));
    await Promise.all([...sends, excl]);
    expect(order.indexOf("exclusive")).toBeGreaterThan(order.indexOf("send1"));
  });
});
