import { expect, it } from "vitest";
import type { ChangeMessageRequest } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode, type Event, HistoryDirection } from "../../gen/chat/v1/client.js";
import type { Store } from "../../internal/store/store.js";
import { expectGapless, group, msg, readAll, users } from "./store-contract.js";

/** Sent at 1,000 ms (msg's time); the windows below are counted from there. */
const edit = (conversationId: string, seq: number, actorId: string, text: string, atMs = 2_000): ChangeMessageRequest =>
  ({ conversationId, seq, actorId, atMs, edit: true, text, editWindowMs: 60_000, maxEdits: 2, forEveryone: false, deleteWindowMs: 0 });
const del = (conversationId: string, seq: number, actorId: string, forEveryone: boolean, atMs = 2_000): ChangeMessageRequest =>
  ({ conversationId, seq, actorId, atMs, edit: false, text: "", editWindowMs: 0, maxEdits: 0, forEveryone, deleteWindowMs: 60_000 });

const changes = (events: Event[]) => events.flatMap((e) => {
  if (e.kind?.$case === "edited") return [`edited ${e.kind.value.seq} "${e.kind.value.text}"`];
  if (e.kind?.$case === "deleted") return [`deleted ${e.kind.value.seq}${e.kind.value.forEveryone ? " for everyone" : " for me"}`];
  return [];
});

/** Edits and deletions (R11, P7): part of the store contract, run on every backend. */
export function messageChangeContract(getStore: () => Promise<Store>): void {
  it("edit: the text is replaced in place, every member's log gets the event (its text read from the message), refusals are typed and change nothing", async () => {
    const store = await getStore();
    const [a, b, x] = await users(store, "a", "b", "x");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "e1", "first"), msg(b!, "e2", "second")] }]);

    const events = await store.changeMessage(edit(conv.id, 1, a!.id, "first, fixed"));
    expect(events.map((e) => [e.userId, e.event!.kind])).toEqual([a!.id, b!.id].map((u) => [u, { $case: "edited", value: { conversationId: conv.id, seq: 1, text: "first, fixed", editedAtMs: 2_000 } }]));
    const page = await store.history(b!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
    expect(page.messages.map((m) => [m.seq, m.text, m.editedAtMs, m.deleted])).toEqual([[1, "first, fixed", 2_000, false], [2, "second", 0, false]]);

    // Typed refusals, nothing changed: someone else's message, an unknown seq, a non-member, outside the window, past the cap.
    await expect(store.changeMessage(edit(conv.id, 2, a!.id, "not mine"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    await expect(store.changeMessage(edit(conv.id, 9, a!.id, "nothing there"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
    await expect(store.changeMessage(edit(conv.id, 1, x!.id, "outsider"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    await expect(store.changeMessage(edit(conv.id, 1, a!.id, "too late", 1_000 + 60_001))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_WINDOW_CLOSED });
    await store.changeMessage(edit(conv.id, 1, a!.id, "second edit", 3_000));
    await expect(store.changeMessage(edit(conv.id, 1, a!.id, "third edit", 4_000))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_WINDOW_CLOSED });

    // The log keeps no version of the text: both edits read back as the text now.
    const log = await readAll(store, b!.id);
    expectGapless(log);
    expect(changes(log)).toEqual(['edited 1 "second edit"', 'edited 1 "second edit"']);
    expect(log.flatMap((e) => (e.kind?.$case === "message" ? [e.kind.value.text] : []))).toEqual(["second edit", "second"]);
  });

  it("delete for me hides a message from the requester only; for everyone leaves a tombstone with its seq, in every page and log entry, and unread no longer counts it", async () => {
    const store = await getStore();
    const [a, b, c] = await users(store, "a", "b", "c");
    const conv = (await group(store, [a!, b!, c!])).conversation;
    const memberIds = [a!.id, b!.id, c!.id];
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [msg(a!, "d1", "keep"), msg(b!, "d2", "secret words"), msg(b!, "d3", "b's own")] }]);
    await store.changeMessage(edit(conv.id, 2, b!.id, "edited secret words"));

    // For me: only c's log hears of it, only c's pages leave it out.
    const mine = await store.changeMessage(del(conv.id, 1, c!.id, false));
    expect(mine.map((e) => e.userId)).toEqual([c!.id]);
    const seqsFor = async (userId: string) => (await store.history(userId, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, fromSeq: 0, limit: 10 })).messages.map((m) => m.seq);
    expect(await seqsFor(c!.id)).toEqual([3, 2]);
    expect(await seqsFor(a!.id)).toEqual([3, 2, 1]);
    expect(await store.hiddenSeqs(c!.id, conv.id)).toEqual([1]);

    // For everyone: not someone else's message (a is the group's creator: allowed any message, any time).
    await expect(store.changeMessage(del(conv.id, 1, b!.id, true))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    await expect(store.changeMessage(del(conv.id, 2, b!.id, true, 1_000 + 60_001))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_WINDOW_CLOSED });
    const everyone = await store.changeMessage(del(conv.id, 2, b!.id, true));
    expect(everyone.map((e) => e.userId)).toEqual(memberIds);
    await expect(store.changeMessage(del(conv.id, 2, b!.id, true))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_MESSAGE_DELETED });
    await expect(store.changeMessage(edit(conv.id, 2, b!.id, "back again"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_MESSAGE_DELETED });
    await store.changeMessage(del(conv.id, 3, a!.id, true, 1_000 + 10 * 60_000));

    const page = await store.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
    expect(page.messages.map((m) => [m.seq, m.text, m.deleted])).toEqual([[1, "keep", false], [2, "", true], [3, "", true]]);
    for (const u of memberIds) {
      const log = await readAll(store, u);
      expectGapless(log);
      expect(JSON.stringify(log)).not.toContain("secret words");
      expect(log.flatMap((e) => (e.kind?.$case === "message" ? [[e.kind.value.seq, e.kind.value.deleted]] : []))).toEqual([[1, false], [2, true], [3, true]]);
    }
    expect(changes(await readAll(store, c!.id))).toEqual(['edited 2 ""', "deleted 1 for me", "deleted 2 for everyone", "deleted 3 for everyone"]);
    // a read nothing since sending seq 1: of 2 and 3, both deleted, none counts.
    const [forA] = await store.listConversations(a!.id);
    expect(forA).toMatchObject({ lastSeq: 3, unread: 0 });
  });

  it("replies: reply_to_seq is stored and comes back in history and the log; the quoted message reads as a tombstone once deleted for everyone", async () => {
    const store = await getStore();
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "r1", "question"), { ...msg(b!, "r2", "answer"), replyToSeq: 1 }] }]);
    await store.changeMessage(del(conv.id, 1, a!.id, true));
    const page = await store.history(b!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
    expect(page.messages.map((m) => [m.seq, m.text, m.deleted, m.replyToSeq ?? 0])).toEqual([[1, "", true, 0], [2, "answer", false, 1]]);
    const log = await readAll(store, a!.id);
    expect(log.flatMap((e) => (e.kind?.$case === "message" ? [[e.kind.value.seq, e.kind.value.replyToSeq ?? 0]] : []))).toEqual([[1, 0], [2, 1]]);
  });

  it("a log page of edits is cut at the byte budget, their texts counted (a backlog of large edits never makes one huge reply)", async () => {
    const store = await getStore();
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [1, 2, 3, 4, 5, 6].map((i) => msg(a!, `big${i}`, `${i}`)) }]);
    const head = (await store.readLog(b!.id, 0, 100)).head;
    for (let seq = 1; seq <= 6; seq++) await store.changeMessage(edit(conv.id, seq, a!.id, `${seq}`.padEnd(300_000, "x")));
    const page = await store.readLog(b!.id, head, 100, 1_000_000);
    const bytes = page.events.reduce((n, e) => n + (e.kind?.$case === "edited" ? e.kind.value.text.length : 0), 0);
    expect(page.events.length).toBeGreaterThan(0);
    expect(page.events.length).toBeLessThan(6);
    expect(bytes).toBeLessThanOrEqual(1_000_000);
    expect(page.more).toBe(true);
    // Every edit still arrives, page after page, with its full text.
    const all = (await readAll(store, b!.id)).filter((e) => e.kind?.$case === "edited");
    expect(all.map((e) => (e.kind?.$case === "edited" ? e.kind.value.text.length : 0))).toEqual([300_000, 300_000, 300_000, 300_000, 300_000, 300_000]);
  });
}
