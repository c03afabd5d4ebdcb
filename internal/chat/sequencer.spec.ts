import { describe, expect, it } from "vitest";
import type { AppendRequest, AppendResponse, AppendGroupResult } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { Sequencer } from "./sequencer.js";
import { sleep } from "../run/sleep.js";

/** An in-memory store with the real store's rules: base_seq check and client-id dedupe. */
class FakeStore {
  heads = new Map<string, number>();
  ids = new Map<string, number>();
  calls: AppendRequest[] = [];
  failNext = false;
  /** Conversations with a write in flight; a second write of one of them would break the base_seq chain. */
  writing = new Set<string>();
  overlaps = 0;
  async lastSeq(id: string) { return this.heads.get(id) ?? 0; }
  async append(req: AppendRequest): Promise<AppendResponse> {
    this.calls.push(req);
    const ids = req.groups.map((g) => g.conversationId);
    if (ids.some((id) => this.writing.has(id)) || new Set(ids).size !== ids.length) this.overlaps++;
    for (const id of ids) this.writing.add(id);
    await sleep(5);
    for (const id of ids) this.writing.delete(id);
    if (this.failNext) { this.failNext = false; throw new Error("store down"); }
    const results: AppendGroupResult[] = req.groups.map((g) => {
      const head = this.heads.get(g.conversationId) ?? 0;
      if (head !== g.baseSeq) return { conversationId: g.conversationId, error: ErrorCode.ERROR_CODE_CONFLICT, messages: [], lastSeq: head, routeEpoch: 0, routeVersions: [] };
      let seq = head;
      const messages = g.messages.map((m) => {
        const key = `${g.conversationId}/${m.senderId}/${m.clientMsgId}`;
        const dup = this.ids.get(key);
        if (dup) return { message: { conversationId: g.conversationId, seq: dup, senderId: m.senderId, senderDeviceId: "", clientMsgId: m.clientMsgId, text: m.text, sentAtMs: 0, editedAtMs: 0, deleted: false, replyToSeq: 0 }, duplicate: true, positions: [] };
        this.ids.set(key, ++seq);
        return { message: { conversationId: g.conversationId, seq, senderId: m.senderId, senderDeviceId: "", clientMsgId: m.clientMsgId, text: m.text, sentAtMs: 0, editedAtMs: 0, deleted: false, replyToSeq: 0 }, duplicate: false, positions: [] };
      });
      this.heads.set(g.conversationId, seq);
      return { conversationId: g.conversationId, error: ErrorCode.ERROR_CODE_UNSPECIFIED, messages, lastSeq: seq, routeEpoch: 0, routeVersions: [] };
    });
    return { results };
  }
}

const msg = (id: string) => ({ senderId: "u", senderDeviceId: "d", clientMsgId: id, text: id, sentAtMs: 0, replyToSeq: 0, firstSend: false });
/** A send of `sender` from `device` whose text is `bytes` bytes of UTF-8 (4-byte emoji, like the attack). */
const sized = (sender: string, id: string, bytes: number, device = "d") => ({ senderId: sender, senderDeviceId: device, clientMsgId: id, text: "\u{1F600}".repeat(bytes / 4), sentAtMs: 0, replyToSeq: 0, firstSend: false });
/** Index of the first store write that carries the send `clientMsgId` of `sender`. */
const writeOf = (store: FakeStore, sender: string, clientMsgId: string) =>
  store.calls.findIndex((c) => c.groups.some((g) => g.messages.some((m) => m.senderId === sender && m.clientMsgId === clientMsgId)));
/** Text bytes of `sender` in each store write. */
const bytesPerWrite = (store: FakeStore, sender: string) =>
  store.calls.map((c) => c.groups.reduce((n, g) => n + g.messages.filter((m) => m.senderId === sender).reduce((k, m) => k + Buffer.byteLength(m.text), 0), 0));

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
    // Forty large sends of user u in one conversation, then one small send of user v in each of two others.
    const sends = [
      ...Array.from({ length: 40 }, (_, i) => seq.submit("big", large(`b${i}`))),
      seq.submit("small1", { ...msg("s1"), senderId: "v" }),
      seq.submit("small2", { ...msg("s2"), senderId: "v" }),
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

  it("serves senders in turn: one user's queued burst over many conversations does not sit ahead of another user's send", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["a", "b"], { maxInFlight: 1, maxBatchMessages: 2_000, maxBatchBytes: 100_000 });
    // The attack, scaled down: 200 large sends of user a over 50 conversations, queued at
    // once (the first write leaves with a's first send; the rest gather behind it), then one of b.
    const burst = Array.from({ length: 200 }, (_, i) => seq.submit(`g${i % 50}`, sized("a", `a${i}`, 20_000)));
    const victim = seq.submit("v", sized("b", "b0", 8));
    await Promise.all([...burst, victim]);
    // b's send rides in the first write formed after it was queued, not after a's 4 MB.
    expect(writeOf(store, "b", "b0")).toBe(1);
    // a's sends keep their order in every conversation.
    for (let g = 0; g < 50; g++) {
      const ids = store.calls.flatMap((c) => c.groups.filter((x) => x.conversationId === `g${g}`).flatMap((x) => x.messages.map((m) => m.clientMsgId)));
      expect(ids).toEqual([0, 1, 2, 3].map((k) => `a${g + 50 * k}`));
    }
  });

  it("serves senders in turn inside one conversation too, keeping each sender's order", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["a", "b"], { maxInFlight: 1, maxBatchMessages: 2_000, maxBatchBytes: 100_000 });
    // User a floods a group from five devices; user b then says one thing in the same group.
    const burst = Array.from({ length: 200 }, (_, i) => seq.submit("g", sized("a", `a${i}`, 20_000, `d${i % 5}`)));
    const victim = seq.submit("g", sized("b", "b0", 8));
    const results = await Promise.all([...burst, victim]);
    expect(writeOf(store, "b", "b0")).toBe(1);
    // Gapless numbering, and a's sends numbered in the order they came.
    expect(results.map((r) => r.appended.message!.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 201 }, (_, i) => i + 1));
    const aSeqs = results.slice(0, 200).map((r) => r.appended.message!.seq);
    expect(aSeqs).toEqual([...aSeqs].sort((x, y) => x - y));
  });

  it("shares each write by bytes between senders that both have a backlog", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["a", "c"], { maxInFlight: 1, maxBatchMessages: 2_000, maxBatchBytes: 100_000, quantumBytes: 4_096 });
    // a sends few large messages, c many small ones: a fair share is by bytes, not by count.
    const sends = [
      ...Array.from({ length: 40 }, (_, i) => seq.submit(`a${i % 4}`, sized("a", `a${i}`, 20_000))),
      ...Array.from({ length: 400 }, (_, i) => seq.submit(`c${i % 4}`, sized("c", `c${i}`, 2_000))),
    ];
    await Promise.all(sends);
    const a = bytesPerWrite(store, "a");
    const c = bytesPerWrite(store, "c");
    // While both have sends waiting (the writes after the first, up to the one that empties a queue),
    // each gets a fair share of every write: at least half of what is left beside one large message,
    // less a quantum and the per-send overhead (about 30 KB of 100 KB here), whatever the sizes of its messages.
    const both = store.calls.map((_, i) => i).filter((i) => i > 0 && a[i]! > 0 && c[i]! > 0);
    expect(both.length).toBeGreaterThan(10);
    for (const i of both.slice(0, -1)) {
      expect(Math.min(a[i]!, c[i]!)).toBeGreaterThanOrEqual(30_000);
    }
    for (const call of store.calls) expect(call.groups.reduce((n, g) => n + g.messages.reduce((k, m) => k + Buffer.byteLength(m.text), 0), 0)).toBeLessThanOrEqual(100_000);
  });

  it("with several writes in flight and many senders: each conversation in one write at a time, gapless, every sender's order kept", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["a", "b", "c", "d"], { maxInFlight: 3, maxBatchMessages: 50, maxBatchBytes: 30_000, quantumBytes: 2_048 });
    const senders = ["a", "b", "c", "d"];
    // A fixed pseudo-random mix of senders, conversations and sizes (1 byte to 8 KB).
    let x = 7;
    const rand = (n: number) => ((x = (x * 1_103_515_245 + 12_345) % 2_147_483_648) % n);
    const submitted: Array<{ sender: string; conv: string; id: string; p: ReturnType<Sequencer["submit"]> }> = [];
    for (let i = 0; i < 600; i++) {
      const sender = senders[rand(4)]!;
      const conv = `c${rand(6)}`;
      const id = `${sender}-${i}`;
      submitted.push({ sender, conv, id, p: seq.submit(conv, sized(sender, id, 4 * (1 + rand(2_000)))) });
      if (i % 50 === 0) await sleep(3);
    }
    const results = await Promise.all(submitted.map((s) => s.p));
    expect(store.overlaps).toBe(0);
    for (let c = 0; c < 6; c++) {
      const seqs = results.filter((_, i) => submitted[i]!.conv === `c${c}`).map((r) => r.appended.message!.seq).sort((p, q) => p - q);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    }
    for (const sender of senders) for (let c = 0; c < 6; c++) {
      const mine = results.filter((_, i) => submitted[i]!.sender === sender && submitted[i]!.conv === `c${c}`).map((r) => r.appended.message!.seq);
      expect(mine).toEqual([...mine].sort((p, q) => p - q));
    }
    for (const call of store.calls) {
      expect(call.groups.reduce((n, g) => n + g.messages.length, 0)).toBeLessThanOrEqual(50);
      const bytes = call.groups.reduce((n, g) => n + g.messages.reduce((k, m) => k + Buffer.byteLength(m.text), 0), 0);
      if (call.groups.reduce((n, g) => n + g.messages.length, 0) > 1) expect(bytes).toBeLessThanOrEqual(30_000);
    }
  });

  it("retries after a CONFLICT with the sends of several senders, each sender's order kept", async () => {
    const store = new FakeStore();
    const seq = new Sequencer(store, async () => ["a", "b"], { maxInFlight: 1, maxBatchMessages: 100 });
    await seq.submit("c", sized("a", "first", 4));
    store.heads.set("c", 10); // another owner appended meanwhile
    const results = await Promise.all([seq.submit("c", sized("a", "a1", 4)), seq.submit("c", sized("b", "b1", 4)), seq.submit("c", sized("a", "a2", 4))]);
    const seqs = results.map((r) => r.appended.message!.seq);
    expect([...seqs].sort((p, q) => p - q)).toEqual([11, 12, 13]);
    expect(seqs[0]!).toBeLessThan(seqs[2]!);
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

  it("bounds what waits: past a sender's share or the total, a send is refused RATE_LIMITED (retryable, nothing written) and others still get in", async () => {
    const store = new FakeStore();
    // The store holds every write until released: the queue can only grow.
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    const append = store.append.bind(store);
    store.append = async (req) => { await held; return append(req); };
    const seq = new Sequencer(store, async () => ["a", "b", "c"], { maxInFlight: 1, maxBatchMessages: 2_000, maxQueuedBytesPerSender: 10_000, maxQueuedBytes: 22_000 });
    const outcome = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => ErrorCode[(e as { code: ErrorCode }).code]);
    // The first send is taken into the held write as it is submitted; then each sender may queue ~10 kB.
    const first = outcome(seq.submit("c1", sized("a", "first", 4_000)));
    const a = [1, 2, 3].map((i) => outcome(seq.submit("c1", sized("a", `a${i}`, 4_000))));
    const b = [1, 2].map((i) => outcome(seq.submit("c2", sized("b", `b${i}`, 4_000))));
    // a and b hold ~16 kB; c's first fits in the total, its second does not (though it fits in c's share).
    const c = [1, 2, 3].map((i) => outcome(seq.submit("c3", sized("c", `c${i}`, 4_000))));
    const refused = seq.submit("c1", sized("a", "a4", 4_000)).then(() => ({ code: ErrorCode.ERROR_CODE_UNSPECIFIED, retryAfterMs: 0 }), (e: unknown) => e as { code: ErrorCode; retryAfterMs: number });
    release();
    expect(await first).toBe("ok");
    expect(await Promise.all(a)).toEqual(["ok", "ok", "ERROR_CODE_RATE_LIMITED"]);
    expect(await Promise.all(b)).toEqual(["ok", "ok"]);
    expect(await Promise.all(c)).toEqual(["ok", "ERROR_CODE_RATE_LIMITED", "ERROR_CODE_RATE_LIMITED"]);
    const r = await refused;
    expect(r.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
    expect(r.retryAfterMs).toBeGreaterThan(0);
    // Nothing refused was written; what was accepted was, gapless.
    const written = store.calls.flatMap((call) => call.groups.flatMap((g) => g.messages.map((m) => m.clientMsgId)));
    expect(written.sort()).toEqual(["a1", "a2", "b1", "b2", "c1", "first"]);
    // Once the queue drains, the sender gets in again.
    expect(await outcome(seq.submit("c1", sized("a", "a5", 4_000)))).toBe("ok");
  });

  it("keeps the heads of at most maxCachedHeads idle conversations, the least recently written forgotten and read again", async () => {
    const store = new FakeStore();
    let lastSeqCalls = 0;
    const lastSeq = store.lastSeq.bind(store);
    store.lastSeq = async (id: string) => { lastSeqCalls++; return lastSeq(id); };
    const seq = new Sequencer(store, async () => ["u"], { maxInFlight: 1, maxBatchMessages: 100, maxCachedHeads: 2 });
    for (const c of ["c1", "c2", "c1", "c3"]) await seq.submit(c, msg(`${c}-${lastSeqCalls}-${Math.random()}`));
    expect(lastSeqCalls).toBe(3);
    expect([...seq.ids()].sort()).toEqual(["c1", "c3"]);
    // c2 was the least recently written: its head is read again, and numbering goes on from it.
    const next = await seq.submit("c2", msg("again"));
    expect(lastSeqCalls).toBe(4);
    expect(next.appended.message!.seq).toBe(2);
  });
});
