import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, Member } from "../../gen/chat/v1/client.js";
import { hashRefreshToken } from "../../internal/auth/refresh-tokens.js";
import type { Store } from "../../internal/store/store.js";

const DAY = 24 * 3600 * 1000;

/**
 * What the store keeps for the per-user quotas (docs/security.md, "Quotas"), written once and
 * run against every backend: the cap on live sessions (the least recently used others end in
 * the log-in's transaction) and the count of groups a user created since a time.
 */
export function quotaContract(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  describe(`quotas: ${name}`, () => {
    let store: Store;
    const tag = randomUUID().slice(0, 8);
    const user = (n: string): User => ({ id: `q-${n}-${tag}`, username: `q${n}${tag}`, passwordHash: "h", createdAtMs: Date.now() });
    const [ann, ben] = [user("ann"), user("ben")];

    beforeAll(async () => {
      store = await open();
      for (const u of [ann, ben]) await store.createUser(u);
    });
    afterAll(() => close(store));

    const now = Date.now();
    const start = (u: User, lastUsedAtMs: number, maxLive: number, expiresAtMs = now + 30 * DAY) => {
      const id = randomUUID();
      const session = { id, userId: u.id, username: u.username, deviceId: "d", createdAtMs: now, lastUsedAtMs, expiresAtMs, endedAtMs: 0 };
      return store.createSession(session, hashRefreshToken(`${id}.x`), maxLive).then((evicted) => ({ id, evicted }));
    };

    it("keeps at most maxLive live sessions per user: a log-in past it ends the least recently used others, nobody else's", async () => {
      const benSession = await start(ben, now - 10_000, 0);
      const oldest = await start(ann, now - 5_000, 3);
      const middle = await start(ann, now - 4_000, 3);
      const recent = await start(ann, now - 1_000, 3);
      // A session that already lapsed does not hold a place.
      await start(ann, now - 9_000, 0, now - 1);
      expect([oldest.evicted, middle.evicted, recent.evicted]).toEqual([[], [], []]);
      const fourth = await start(ann, now, 3);
      expect(fourth.evicted).toEqual([oldest.id]);
      expect(await store.checkSessions([oldest.id, middle.id, recent.id, fourth.id, benSession.id], now)).toEqual([false, true, true, true, true]);
      // Down to one: the two least recently used of the others end at once.
      const fifth = await start(ann, now, 2);
      expect([...fifth.evicted].sort()).toEqual([middle.id, recent.id].sort());
      expect(await store.checkSessions([fourth.id, fifth.id, benSession.id], now)).toEqual([true, true, true]);
      // No cap: nothing ends.
      expect((await start(ann, now, 0)).evicted).toEqual([]);
    });

    it("counts the groups a user created since a time, not direct conversations nor others' groups", async () => {
      const conv = (kind: ConversationKind, members: User[], createdAtMs: number) => Conversation.create({
        id: kind === ConversationKind.CONVERSATION_KIND_DIRECT ? `d:${members.map((m) => m.id).sort().join(":")}` : `g:${randomUUID()}`,
        kind, title: "t", createdAtMs, members: members.map((m) => Member.create({ userId: m.id })),
      });
      expect(await store.groupsCreatedSince(ann.id, now - DAY)).toBe(0);
      await store.createConversation(conv(ConversationKind.CONVERSATION_KIND_GROUP, [ann, ben], now - 2 * DAY), ann.id, 100);
      await store.createConversation(conv(ConversationKind.CONVERSATION_KIND_GROUP, [ann], now - 1_000), ann.id, 100);
      await store.createConversation(conv(ConversationKind.CONVERSATION_KIND_GROUP, [ann, ben], now), ann.id, 100);
      await store.createConversation(conv(ConversationKind.CONVERSATION_KIND_DIRECT, [ann, ben], now), ann.id, 2);
      await store.createConversation(conv(ConversationKind.CONVERSATION_KIND_GROUP, [ben, ann], now), ben.id, 100);
      expect(await store.groupsCreatedSince(ann.id, now - DAY)).toBe(2);
      expect(await store.groupsCreatedSince(ann.id, now - 3 * DAY)).toBe(3);
      expect(await store.groupsCreatedSince(ben.id, now - DAY)).toBe(1);
    });
  });
}
