import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import type { Store } from "../../internal/store/store.js";

/**
 * Store.contactIds, the set presence is visible within (the edge's PresenceQuery
 * and PresenceSubscribe): everyone who shares a conversation with the user, the
 * user included, and it follows membership. Written once, run against every
 * Store implementation; it answers what listConversations' members did.
 */
export function contactsContract(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  describe(`contact ids: ${name}`, () => {
    let store: Store;
    const tag = randomUUID().slice(0, 8);
    const user = (n: string): User => ({ id: `u-${n}-${tag}`, username: `${n}${tag}`, passwordHash: "h", createdAtMs: Date.now() });
    const [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map(user) as [User, User, User, User, User];
    const conversation = (id: string, kind: ConversationKind, members: User[]) =>
      Conversation.create({ id, kind, title: kind === ConversationKind.CONVERSATION_KIND_GROUP ? "t" : "", members: members.map((u) => Member.create({ userId: u.id })) });
    const group = `g:${randomUUID()}`;

    beforeAll(async () => {
      store = await open();
      for (const u of [alice, bob, carol, dave, erin]) await store.createUser(u);
      // alice: a direct conversation with bob, a group with carol and dave; erin shares nothing with her.
      await store.createConversation(conversation(`d:${[alice.id, bob.id].sort().join(":")}`, ConversationKind.CONVERSATION_KIND_DIRECT, [alice, bob]), alice.id, 2);
      await store.createConversation(conversation(group, ConversationKind.CONVERSATION_KIND_GROUP, [alice, carol, dave]), alice.id, 100);
    });
    afterAll(async () => {
      await close(store);
    });

    it("is the user and everyone in their conversations, each once, and what listConversations' members are", async () => {
      const ids = await store.contactIds(alice.id);
      expect([...ids].sort()).toEqual([alice.id, bob.id, carol.id, dave.id].sort());
      const fromList = new Set([alice.id, ...(await store.listConversations(alice.id)).flatMap((c) => c.members.map((m) => m.userId))]);
      expect([...ids].sort()).toEqual([...fromList].sort());
      expect([...(await store.contactIds(bob.id))].sort()).toEqual([alice.id, bob.id].sort());
    });

    it("is only the user for someone in no conversation, and follows membership changes", async () => {
      expect(await store.contactIds(erin.id)).toEqual([erin.id]);
      await store.changeMembership({ conversationId: group, actorId: alice.id, subjectId: dave.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 100 });
      expect(await store.contactIds(alice.id)).not.toContain(dave.id);
      expect(await store.contactIds(dave.id)).toEqual([dave.id]);
    });
  });
}
