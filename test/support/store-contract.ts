import { routeVersionsContract } from "./route-versions-contract.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, type Event, HistoryDirection, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import type { Store } from "../../internal/store/store.js";
import { blockContract } from "./block-contract.js";
import { contactsContract } from "./contacts-contract.js";
import { messageChangeContract } from "./message-change-contract.js";
import { pageBoundsContract } from "./page-bounds-contract.js";
import { privacyContract } from "./privacy-contract.js";
import { quotaContract } from "./quota-contract.js";
import { sessionStoreContract } from "./session-store-contract.js";

/**
 * The behaviour every Store implementation owes its callers, run on each of
 * them: SQLite (the embedded default) in the unit tier, PostgreSQL and
 * Cassandra against the real servers in test/servers.
 */
export interface StoreBackend {
  name: string;
  /** Opens a store instance over the data (once per suite; a second one for stores that several instances write). */
  open(): Promise<Store>;
  /**
   * What a second chat owner appends through. Unset: a second instance (open()). A store with one
   * writer per keyspace (Cassandra's log leader) answers the instance the suite already has: there,
   * owners race through the one writer, and a second instance would take the log from the first.
   */
  secondOwner?(first: Store): Promise<Store>;
  /** Log entries expire by themselves (no trimLog): the backend's own suite tests its trim. */
  logExpires?: boolean;
  setup(): Promise<void>;
  /** Closes every store it opened and drops the data. */
  teardown(): Promise<void>;
}

const RUN = randomBytes(4).toString("hex");
let uniq = 0;
export const id = (p: string) => `${p}-${RUN}-${++uniq}`;

export async function users(store: Store, ...names: string[]): Promise<User[]> {
  const out: User[] = [];
  for (const n of names) {
    const u: User = { id: id(`u-${n}`), username: id(n), passwordHash: "h", createdAtMs: Date.now() };
    await store.createUser(u);
    out.push(u);
  }
  return out;
}

export async function group(store: Store, members: User[]) {
  const conv = Conversation.create({ id: id("c"), kind: ConversationKind.CONVERSATION_KIND_GROUP, title: "g", members: members.map((m) => Member.create({ userId: m.id })) });
  return store.createConversation(conv, members[0]!.id, 100);
}

export const msg = (sender: User, clientMsgId: string, text = clientMsgId) => ({ senderId: sender.id, senderDeviceId: "d1", clientMsgId, text, sentAtMs: 1_000, replyToSeq: 0, firstSend: false });

export async function readAll(store: Store, userId: string): Promise<Event[]> {
  const out: Event[] = [];
  for (let after = 0; ; ) {
    const r = await store.readLog(userId, after, 3);
    if (r.events.length === 0) return out;
    out.push(...r.events);
    after = r.events[r.events.length - 1]!.pos;
  }
}

export const messageSeqs = (events: Event[], conversationId: string) =>
  events.flatMap((e) => (e.kind?.$case === "message" && e.kind.value.conversationId === conversationId ? [e.kind.value.seq] : []));

export function expectGapless(events: Event[]) {
  expect(events.map((e) => e.pos)).toEqual(events.map((_, i) => i + 1));
}

export function storeContract(backend: StoreBackend): void {
describe(`message store contract: ${backend.name}`, () => {
  let store: Store;
  beforeAll(async () => {
    await backend.setup();
    store = await backend.open();
  }, 120_000);
  afterAll(() => backend.teardown(), 60_000);

  // The backend's store is closed by its teardown. One suite per interface of store.ts, and
  // one for where they meet (a membership change is a directory write the log must carry).
  describe("directory", () => {
    contactsContract(backend.name, async () => store, async () => {});
    sessionStoreContract(backend.name, async () => store, async () => {});
    quotaContract(backend.name, async () => store, async () => {});
    privacyContract(backend.name, async () => store, async () => {});
    blockContract(async () => store);
  });
  describe("message log", () => {
    pageBoundsContract(backend.name, async () => store, async () => {});
    messageChangeContract(async () => store);
    messageLogCases(() => store, backend);
    routeVersionsContract(() => store);
  });

  it("creates users and conversations; membership events land in every member's log", async () => {
    const [a, b, c] = await users(store, "a", "b", "c");
    await expect(store.createUser({ ...a!, id: id("other") })).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_ALREADY_EXISTS });
    expect((await store.getUserByName(a!.username))?.id).toBe(a!.id);
    expect((await store.getUsers([a!.id, b!.id])).map((u) => u.id).sort()).toEqual([a!.id, b!.id].sort());
    const created = await group(store, [a!, b!]);
    expect(created.created).toBe(true);
    expect(created.events.map((e) => [e.userId, e.event!.pos])).toEqual([[a!.id, 1], [b!.id, 1]]);
    const conv = created.conversation;
    const log = await store.readLog(b!.id, 0, 10);
    expect(log.head).toBe(1);
    expect(log.events[0]!.kind).toMatchObject({ $case: "membership", value: { action: MembershipAction.MEMBERSHIP_ACTION_CREATED, conversationId: conv.id } });

    const added = await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: c!.id, action: MembershipAction.MEMBERSHIP_ACTION_ADDED, maxMembers: 10 });
    expect(added.events.map((e) => [e.userId, e.event!.pos])).toEqual([[a!.id, 2], [b!.id, 2], [c!.id, 1]]);
    expect(added.conversation.members.map((m) => m.userId)).toEqual([a!.id, b!.id, c!.id]);
    const removed = await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: b!.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 10 });
    expect(removed.events.map((e) => e.userId)).toEqual([a!.id, b!.id, c!.id]);
    const cLog = await readAll(store, c!.id);
    expect(cLog.map((e) => e.kind?.$case === "membership" && e.kind.value.action)).toEqual([MembershipAction.MEMBERSHIP_ACTION_ADDED, MembershipAction.MEMBERSHIP_ACTION_REMOVED]);
    expectGapless(cLog);
    await expect(store.changeMembership({ conversationId: conv.id, actorId: b!.id, subjectId: c!.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 10 }))
      .rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    const got = await store.getConversation(conv.id);
    expect(got?.conversation.members.map((m) => m.userId)).toEqual([a!.id, c!.id]);
    expect((await store.listConversations(c!.id)).map((x) => x.id)).toEqual([conv.id]);
  });
});
}

/** The message log's own cases: numbering, logs, history, pointers. */
function messageLogCases(current: () => Store, backend: StoreBackend): void {
  let store: Store;
  beforeAll(() => { store = current(); });

  it("append: seqs 1..n, gapless per-member positions, duplicates return the original, a stale base_seq is refused alone", async () => {
    const [a, b, c] = await users(store, "a", "b", "c");
    const conv = (await group(store, [a!, b!, c!])).conversation;
    const memberIds = [a!.id, b!.id, c!.id];
    const [r1] = await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [1, 2, 3, 4, 5].map((i) => msg(a!, `m${i}`)) }]);
    expect(r1!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
    expect(r1!.lastSeq).toBe(5);
    expect(r1!.messages.map((m) => m.message!.seq)).toEqual([1, 2, 3, 4, 5]);
    // Each member's log: the membership event at 1, then the messages at 2..6.
    expect(r1!.messages.map((m) => m.positions)).toEqual([2, 3, 4, 5, 6].map((p) => [p, p, p]));
    expect(await store.lastSeq(conv.id)).toBe(5);
    for (const u of memberIds) {
      const log = await readAll(store, u);
      expectGapless(log);
      expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3, 4, 5]);
    }
    // The sender has read what they sent.
    const snap = (await store.getConversation(conv.id))!.conversation;
    expect(snap.lastSeq).toBe(5);
    expect(snap.members.map((m) => [m.deliveredSeq, m.readSeq])).toEqual([[5, 5], [0, 0], [0, 0]]);

    // Duplicate (m2) and a new one in one group; a duplicate within the group too.
    const [r2] = await store.append([{ conversationId: conv.id, baseSeq: 5, memberIds, messages: [msg(a!, "m2", "again"), msg(b!, "n1"), msg(b!, "n1")] }]);
    expect(r2!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
    expect(r2!.messages.map((m) => [m.message!.seq, m.duplicate, m.message!.text, m.positions])).toEqual([
      [2, true, "m2", []], [6, false, "n1", [7, 7, 7]], [6, true, "n1", []],
    ]);
    expect(r2!.lastSeq).toBe(6);
    // Only duplicates: nothing written.
    const [r3] = await store.append([{ conversationId: conv.id, baseSeq: 6, memberIds, messages: [msg(a!, "m1")] }]);
    expect(r3).toMatchObject({ error: ErrorCode.ERROR_CODE_UNSPECIFIED, lastSeq: 6 });
    expect(r3!.messages[0]).toMatchObject({ duplicate: true, positions: [], message: { seq: 1, clientMsgId: "m1" } });

    // A stale base_seq is refused; another conversation's group in the same batch is not.
    const other = (await group(store, [a!, b!])).conversation;
    const [stale, ok, missing] = await store.append([
      { conversationId: conv.id, baseSeq: 3, memberIds, messages: [msg(a!, "late")] },
      { conversationId: other.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "o1")] },
      { conversationId: id("nope"), baseSeq: 0, memberIds, messages: [msg(a!, "x")] },
    ]);
    expect(stale).toMatchObject({ error: ErrorCode.ERROR_CODE_CONFLICT, lastSeq: 6, messages: [] });
    expect(ok).toMatchObject({ error: ErrorCode.ERROR_CODE_UNSPECIFIED, lastSeq: 1 });
    expect(missing!.error).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
    expect(await store.lastSeq(conv.id)).toBe(6);
    const cLog = await readAll(store, c!.id);
    expect(messageSeqs(cLog, conv.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(cLog.some((e) => e.kind?.$case === "message" && e.kind.value.clientMsgId === "late")).toBe(false);
    await expect(store.lastSeq(id("nope"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
  });

  it("a first send is stored once, and its resend (no longer first) is answered as the original", async () => {
    const [a, b] = await users(store, "fs-a", "fs-b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    const first = (m: ReturnType<typeof msg>) => ({ ...m, firstSend: true });
    // Marked first twice in one group (a client that broke its promise): still one message.
    const [r1] = await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [first(msg(a!, "f1")), first(msg(a!, "f1")), first(msg(b!, "f2"))] }]);
    expect(r1!.messages.map((m) => [m.message!.seq, m.duplicate])).toEqual([[1, false], [1, true], [2, false]]);
    const [r2] = await store.append([{ conversationId: conv.id, baseSeq: 2, memberIds, messages: [msg(a!, "f1", "again"), msg(b!, "f2", "again")] }]);
    expect(r2).toMatchObject({ error: ErrorCode.ERROR_CODE_UNSPECIFIED, lastSeq: 2 });
    expect(r2!.messages.map((m) => [m.message!.seq, m.duplicate, m.message!.text])).toEqual([[1, true, "f1"], [2, true, "f2"]]);
    const page = await store.history(b!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
    expect(page.messages.map((m) => m.clientMsgId)).toEqual(["f1", "f2"]);
  });

  it("two owners racing appends never write a seq twice; every member logs each accepted message once, in seq order", async () => {
    const owner2 = backend.secondOwner ? await backend.secondOwner(store) : await backend.open();
    const [a, b, c] = await users(store, "a", "b", "c");
    const conv = (await group(store, [a!, b!, c!])).conversation;
    const memberIds = [a!.id, b!.id, c!.id];
    const accepted = new Map<string, number>();
    const owners = [store, owner2, store, owner2];
    let conflicts = 0;
    for (let round = 0; round < 12; round++) {
      await Promise.all(owners.map(async (owner, o) => {
        const clientMsgId = `r${round}-o${o}`;
        for (;;) {
          const base = await owner.lastSeq(conv.id);
          const [r] = await owner.append([{ conversationId: conv.id, baseSeq: base, memberIds, messages: [msg(o % 2 ? b! : a!, clientMsgId)] }]);
          if (r!.error === ErrorCode.ERROR_CODE_CONFLICT) { conflicts++; continue; }
          expect(r!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
          accepted.set(clientMsgId, r!.messages[0]!.message!.seq);
          return;
        }
      }));
    }
    expect(accepted.size).toBe(48);
    expect([...accepted.values()].sort((x, y) => x - y)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
    expect(conflicts).toBeGreaterThan(0);
    const page = await store.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 200 });
    expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
    for (const m of page.messages) expect(accepted.get(m.clientMsgId)).toBe(m.seq);
    for (const u of memberIds) {
      const log = await readAll(owner2, u);
      expectGapless(log);
      expect(messageSeqs(log, conv.id)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
    }
  }, 120_000);

  it("readLog pages across bucket boundaries", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    for (let i = 0; i < 4; i++) {
      await store.append([{ conversationId: conv.id, baseSeq: i * 3, memberIds: [a!.id, b!.id], messages: [0, 1, 2].map((k) => msg(a!, `p${i}-${k}`)) }]);
    }
    const whole = await store.readLog(b!.id, 0, 100);
    expect(whole.head).toBe(13);
    expectGapless(whole.events);
    const paged = await readAll(store, b!.id);
    expect(paged).toEqual(whole.events);
    for (const after of [3, 4, 5, 9, 10]) {
      const r = await store.readLog(b!.id, after, 2);
      expect(r.events.map((e) => e.pos)).toEqual([after + 1, after + 2]);
      expect(r.head).toBe(13);
    }
    expect((await store.readLog(b!.id, 13, 10)).events).toEqual([]);
    expect((await store.readLog(id("nobody"), 0, 10))).toEqual({ events: [], head: 0 });
    // The heads edges check their sessions against, in order, 0 for an empty log.
    expect(await store.logHeads([b!.id, id("nobody"), a!.id])).toEqual([13, 0, 13]);
  });

  // Stores whose entries expire by themselves (Cassandra's TTL) test their trim in their own suite.
  it.skipIf(backend.logExpires)("trimLog deletes the entries written before its cutoff: a read from before them is told where the trim ends, history keeps every message", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    const send = (base: number, n: number) => store.append([{ conversationId: conv.id, baseSeq: base, memberIds: [a!.id, b!.id], messages: Array.from({ length: n }, (_, k) => msg(a!, `t${base + k}`)) }]);
    await send(0, 3);
    // The cutoff falls after the first entries' millisecond and before the next ones' (entries carry the store's clock).
    const cutoff = Date.now() + 1;
    while (Date.now() <= cutoff) await new Promise((r) => setImmediate(r));
    await send(3, 2);
    expect(await store.trimLog!(cutoff)).toBeGreaterThanOrEqual(8);
    // b's log: 1 its membership, 2-4 the first messages (trimmed), 5-6 the later ones.
    for (const after of [0, 2]) expect(await store.readLog(b!.id, after, 10)).toMatchObject({ events: [], head: 6, trimmedTo: 4 });
    const rest = await store.readLog(b!.id, 4, 10);
    expect(rest.trimmedTo ?? 0).toBe(0);
    expect(messageSeqs(rest.events, conv.id)).toEqual([4, 5]);
    expect(rest.events.map((e) => e.pos)).toEqual([5, 6]);
    expect((await store.readLog(b!.id, 6, 10)).events).toEqual([]);
    // Nothing left to trim; the log goes on from its head; history is whole.
    expect(await store.trimLog!(cutoff)).toBe(0);
    await send(5, 1);
    expect((await store.readLog(b!.id, 6, 10)).events.map((e) => e.pos)).toEqual([7]);
    const page = await store.history(b!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 50 });
    expect(page.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("history pages forward and backward across buckets; a non-member is denied", async () => {
    const [a, b, x] = await users(store, "a", "b", "x");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: Array.from({ length: 11 }, (_, i) => msg(a!, `h${i + 1}`)) }]);
    const page = (direction: HistoryDirection, fromSeq: number, limit: number) => store.history(b!.id, { conversationId: conv.id, direction, fromSeq, limit });
    const F = HistoryDirection.HISTORY_DIRECTION_FORWARD;
    const B = HistoryDirection.HISTORY_DIRECTION_BACKWARD;
    const seqs = async (d: HistoryDirection, from: number, limit: number) => {
      const p = await page(d, from, limit);
      return [p.messages.map((m) => m.seq), p.hasMore, p.nextFromSeq];
    };
    expect(await seqs(F, 0, 3)).toEqual([[1, 2, 3], true, 3]);
    expect(await seqs(F, 3, 5)).toEqual([[4, 5, 6, 7, 8], true, 8]);
    expect(await seqs(F, 8, 3)).toEqual([[9, 10, 11], false, 11]);
    expect(await seqs(F, 11, 3)).toEqual([[], false, 11]);
    expect(await seqs(B, 0, 3)).toEqual([[11, 10, 9], true, 9]);
    expect(await seqs(B, 9, 5)).toEqual([[8, 7, 6, 5, 4], true, 4]);
    expect(await seqs(B, 4, 3)).toEqual([[3, 2, 1], false, 1]);
    expect(await seqs(B, 1, 3)).toEqual([[], false, 1]);
    expect(await seqs(B, 0, 0)).toEqual([[11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1], false, 1]);
    expect((await page(F, 0, 1)).messages[0]).toMatchObject({ seq: 1, clientMsgId: "h1", text: "h1", senderId: a!.id, senderDeviceId: "d1", sentAtMs: 1000 });
    await expect(store.history(x!.id, { conversationId: conv.id, direction: F, fromSeq: 0, limit: 3 })).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
  });

  it("updatePointers never moves back nor past the last seq, reading implies delivery, a read marker is logged", async () => {
    const [a, b, x] = await users(store, "a", "b", "x");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [1, 2, 3, 4, 5, 6].map((i) => msg(a!, `q${i}`)) }]);
    expect(await store.updatePointers(conv.id, b!.id, 2, 0)).toMatchObject({ deliveredSeq: 2, readSeq: 0, changed: true, readEvent: undefined });
    const r = await store.updatePointers(conv.id, b!.id, 0, 4);
    expect(r).toMatchObject({ deliveredSeq: 4, readSeq: 4, changed: true });
    expect(r.readEvent).toMatchObject({ pos: 8, kind: { $case: "read", value: { conversationId: conv.id, readSeq: 4 } } });
    expect(await store.updatePointers(conv.id, b!.id, 1, 1)).toMatchObject({ deliveredSeq: 4, readSeq: 4, changed: false });
    expect(await store.updatePointers(conv.id, b!.id, 99, 0)).toMatchObject({ deliveredSeq: 6, readSeq: 4, changed: true });
    const last = await store.updatePointers(conv.id, b!.id, 0, 99);
    expect(last).toMatchObject({ deliveredSeq: 6, readSeq: 6, changed: true, readEvent: { pos: 9 } });
    const log = await store.readLog(b!.id, 7, 10);
    expect(log.events.map((e) => [e.pos, e.kind?.$case === "read" ? e.kind.value.readSeq : null])).toEqual([[8, 4], [9, 6]]);
    await expect(store.updatePointers(conv.id, x!.id, 1, 1)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    // Concurrent updates: the pointer ends at the max, never below.
    await Promise.all([3, 6, 1, 5].map((s) => store.updatePointers(conv.id, a!.id, s, s)));
    const [mine] = await store.listConversations(b!.id);
    expect(mine).toMatchObject({ id: conv.id, lastSeq: 6, readSeq: 6, unread: 0 });
    const [theirs] = await store.listConversations(a!.id);
    expect(theirs).toMatchObject({ lastSeq: 6, readSeq: 6 });
    expect((await store.getConversation(conv.id))!.conversation.members.map((m) => [m.deliveredSeq, m.readSeq])).toEqual([[6, 6], [6, 6]]);
    await store.append([{ conversationId: conv.id, baseSeq: 6, memberIds: [a!.id, b!.id], messages: [msg(a!, "q7")] }]);
    const [later] = await store.listConversations(b!.id);
    expect(later).toMatchObject({ lastSeq: 7, readSeq: 6, unread: 1 });
  });

  it("updatePointersBatch answers each move on its own: a non-member's is refused alone, a read marker is logged once", async () => {
    const [a, b, x] = await users(store, "a", "b", "x");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [1, 2, 3].map((i) => msg(a!, `b${i}`)) }]);
    const results = await store.updatePointersBatch([
      { conversationId: conv.id, userId: b!.id, deliveredSeq: 3, readSeq: 2 },
      { conversationId: conv.id, userId: x!.id, deliveredSeq: 3, readSeq: 3 },
      { conversationId: conv.id, userId: a!.id, deliveredSeq: 1, readSeq: 0 },
    ]);
    expect(results[0]).toMatchObject({ pointers: { deliveredSeq: 3, readSeq: 2, changed: true, readEvent: { kind: { $case: "read", value: { readSeq: 2 } } } } });
    expect(results[1]).toEqual({ error: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    // The sender's pointers are already at 3: nothing moves.
    expect(results[2]).toMatchObject({ pointers: { deliveredSeq: 3, readSeq: 3, changed: false } });
    const log = await readAll(store, b!.id);
    expect(log.filter((e) => e.kind?.$case === "read").map((e) => e.kind?.$case === "read" && e.kind.value.readSeq)).toEqual([2]);
    expectGapless(log);
    expect(await store.updatePointersBatch([])).toEqual([]);
  });
}
