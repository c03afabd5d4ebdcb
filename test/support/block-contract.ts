import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { ChangeMessageRequest } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import type { Store } from "../../internal/store/store.js";
import { group, id, msg, users } from "./store-contract.js";

const DAY = 86_400_000;

/**
 * Block lists and account deletion (BlockStore, and the erasure's sentMessages), part of the
 * store contract: run on SQLite in the unit tier, on PostgreSQL and the Cassandra store in test/servers.
 */
export function blockContract(getStore: () => Promise<Store>): void {
  it("blocks: set once (a repeat changes nothing), listed both ways, found among a conversation's members, and undone by unblock", async () => {
    const store = await getStore();
    const [a, b, c] = await users(store, "ba", "bb", "bc");
    const shared = (await group(store, [a!, b!, c!])).conversation;

    const first = await store.setBlocked(a!.id, b!.id, true, 1_000);
    expect(first).toEqual({ changed: true, sharedConversationIds: [shared.id] });
    expect((await store.setBlocked(a!.id, b!.id, true, 5_000)).changed).toBe(false);
    await store.setBlocked(a!.id, c!.id, true, 2_000);

    const ofA = await store.blocks(a!.id);
    // Most recent first, with the time of the first block (the repeat did not move it).
    expect(ofA.blocked).toEqual([{ userId: c!.id, username: c!.username, blockedAtMs: 2_000 }, { userId: b!.id, username: b!.username, blockedAtMs: 1_000 }]);
    expect(ofA.blockedBy).toEqual([]);
    expect(await store.blocks(b!.id)).toEqual({ blocked: [], blockedBy: [a!.id] });
    expect((await store.blockPairs([a!.id, b!.id, c!.id])).map((p) => `${p.blockerId}>${p.blockedId}`).sort()).toEqual([`${a!.id}>${b!.id}`, `${a!.id}>${c!.id}`].sort());
    expect(await store.blockPairs([b!.id, c!.id])).toEqual([]);

    expect(await store.setBlocked(a!.id, b!.id, false, 6_000)).toEqual({ changed: true, sharedConversationIds: [shared.id] });
    expect((await store.setBlocked(a!.id, b!.id, false, 7_000)).changed).toBe(false);
    expect(await store.blocks(b!.id)).toEqual({ blocked: [], blockedBy: [] });
    expect((await store.blockPairs([a!.id, b!.id, c!.id])).map((p) => p.blockedId)).toEqual([c!.id]);
  });

  it("account deletion: every session ends, the username stays taken, members show a deleted account, block lists go; a repeat answers the same", async () => {
    const store = await getStore();
    const [a, b] = await users(store, "da", "db");
    const conv = (await group(store, [a!, b!])).conversation;
    const now = Date.now();
    const sessionIds = [randomUUID(), randomUUID()];
    for (const sid of sessionIds) {
      await store.createSession({ id: sid, userId: a!.id, username: a!.username, deviceId: "d", createdAtMs: now, lastUsedAtMs: now, expiresAtMs: now + 30 * DAY, endedAtMs: 0 }, Buffer.from(sid));
    }
    await store.setBlocked(a!.id, b!.id, true, 1_000);
    await store.setBlocked(b!.id, a!.id, true, 1_000);
    expect(await store.deletedAmong([a!.id, b!.id])).toEqual([]);

    const deleted = await store.deleteAccount(a!.id, now + 1);
    expect([...deleted.sessionIds].sort()).toEqual([...sessionIds].sort());
    expect(deleted.conversationIds).toEqual([conv.id]);
    expect(await store.checkSessions(sessionIds, now + 2)).toEqual([false, false]);
    const row = await store.getUserByName(a!.username);
    expect(row).toMatchObject({ id: a!.id, passwordHash: "" });
    expect(row!.deletedAtMs).toBeGreaterThan(0);
    await expect(store.createUser({ id: id("reuse"), username: a!.username, passwordHash: "h", createdAtMs: now })).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_ALREADY_EXISTS });
    expect(await store.deletedAmong([a!.id, b!.id])).toEqual([a!.id]);
    const members = (await store.getConversation(conv.id))!.conversation.members;
    expect(members.map((m) => [m.userId, m.username, m.accountDeleted])).toEqual([[a!.id, "", true], [b!.id, b!.username, false]]);
    expect((await store.listConversations(b!.id))[0]!.members.find((m) => m.userId === a!.id)).toMatchObject({ username: "", accountDeleted: true });
    expect(await store.blocks(b!.id)).toEqual({ blocked: [], blockedBy: [] });

    expect(await store.deleteAccount(a!.id, now + 5)).toEqual(deleted);
    await expect(store.deleteAccount(id("nobody"), now)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
  });

  it("sentMessages: the sender's messages of one conversation not yet deleted for everyone, and nobody else's", async () => {
    const store = await getStore();
    const [a, b] = await users(store, "sa", "sb");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "s1"), msg(b!, "s2"), msg(a!, "s3"), msg(a!, "s4")] }]);
    expect(await store.sentMessages(conv.id, a!.id)).toEqual([1, 3, 4]);
    const del: ChangeMessageRequest = { conversationId: conv.id, seq: 3, actorId: a!.id, atMs: 2_000, edit: false, text: "", editWindowMs: 0, maxEdits: 0, forEveryone: true, deleteWindowMs: 60_000 };
    await store.changeMessage(del);
    expect(await store.sentMessages(conv.id, a!.id)).toEqual([1, 4]);
    expect(await store.sentMessages(conv.id, b!.id)).toEqual([2]);
    expect(await store.sentMessages(id("none"), a!.id)).toEqual([]);
  });
}
