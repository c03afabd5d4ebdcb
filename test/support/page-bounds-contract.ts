import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, type Event, HistoryDirection, type HistoryPage, Member, type Message } from "../../gen/chat/v1/client.js";
import type { Store } from "../../internal/store/store.js";

/** A budget small enough that a few kilobyte-sized messages overflow it, so the cases stay cheap. */
const MAX_BYTES = 10_000;
const TEXT = 3_000;

const textOf = (events: Event[]) => events.flatMap((e) => (e.kind?.$case === "message" ? [e.kind.value.text] : []));
const bytes = (texts: string[]) => texts.reduce((n, t) => n + Buffer.byteLength(t), 0);

/**
 * Byte bounds of ReadLog and History pages (issue: a backlog of large messages
 * made one reply larger than gRPC's limit, and the same page was fetched for
 * ever). Written once, run against every Store implementation: each page stays
 * within the byte budget, never comes back empty while events follow (one event
 * larger than the budget still comes, alone), and paging yields every event
 * once, in order.
 */
export function pageBoundsContract(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  describe(`page byte bounds: ${name}`, () => {
    let store: Store;
    let alice: User;
    let bob: User;
    let conv: string;
    let base = 0;
    const sent: string[] = [];

    const append = async (texts: string[]) => {
      const messages = texts.map((text) => ({ senderId: alice.id, senderDeviceId: "d", clientMsgId: randomUUID(), text, sentAtMs: Date.now(), firstSend: false }));
      const [r] = await store.append([{ conversationId: conv, baseSeq: base, memberIds: [alice.id, bob.id], messages }]);
      expect(r!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
      base = r!.lastSeq;
      sent.push(...texts);
    };

    beforeAll(async () => {
      store = await open();
      const tag = randomUUID().slice(0, 8);
      [alice, bob] = ["alice", "bob"].map((n) => ({ id: `u-${n}-${tag}`, username: `${n}${tag}`, passwordHash: "h", createdAtMs: Date.now() }));
      for (const u of [alice!, bob!]) await store.createUser(u);
      conv = `g:${randomUUID()}`;
      await store.createConversation(Conversation.create({ id: conv, kind: ConversationKind.CONVERSATION_KIND_GROUP, title: "t", members: [alice!, bob!].map((u) => Member.create({ userId: u.id })) }), alice!.id, 100);
      // Ten messages of 3 KB (a page holds about three), one of 20 KB (alone larger than a page), then five more.
      await append(Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(TEXT, "x")));
      await append(["big".padEnd(2 * MAX_BYTES, "é")]);
      await append(Array.from({ length: 5 }, (_, i) => `${i + 10}`.padEnd(TEXT, "y")));
    });
    afterAll(async () => {
      await close(store);
    });

    it("ReadLog pages stay within the byte budget, are never empty while events follow, and add up to the whole log", async () => {
      const pages: Array<{ events: Event[]; more?: boolean }> = [];
      for (let after = 0; pages.length < 100; ) {
        const page = await store.readLog(bob.id, after, 1_000, MAX_BYTES);
        pages.push(page);
        if (page.events.length === 0) break;
        after = page.events[page.events.length - 1]!.pos;
        if (!page.more) break;
      }
      const all = pages.flatMap((p) => p.events);
      expect(all.map((e) => e.pos)).toEqual(all.map((_, i) => i + 1));
      expect(textOf(all)).toEqual(sent);
      for (const p of pages) if (p.events.length > 1) expect(bytes(textOf(p.events))).toBeLessThanOrEqual(MAX_BYTES);
      // Pages were cut by bytes (1,000 events were allowed), and every page but the last said more follow.
      expect(pages.length).toBeGreaterThan(5);
      expect(pages.slice(0, -1).every((p) => p.more === true)).toBe(true);
      expect(pages[pages.length - 1]!.more ?? false).toBe(false);
      // The message larger than the budget came alone, and the reader moved past it.
      const big = pages.find((p) => textOf(p.events).some((t) => t.startsWith("big")));
      expect(big?.events.length).toBe(1);
    });

    for (const direction of [HistoryDirection.HISTORY_DIRECTION_FORWARD, HistoryDirection.HISTORY_DIRECTION_BACKWARD]) {
      it(`History pages (${HistoryDirection[direction]}) stay within the byte budget and page through every message once`, async () => {
        const pages: HistoryPage[] = [];
        for (let from = 0; pages.length < 100; ) {
          const page = await store.history(bob.id, { conversationId: conv, direction, fromSeq: from, limit: 200 }, MAX_BYTES);
          pages.push(page);
          if (!page.hasMore) break;
          expect(page.messages.length).toBeGreaterThan(0);
          from = page.nextFromSeq;
        }
        const all: Message[] = pages.flatMap((p) => p.messages);
        const expected = direction === HistoryDirection.HISTORY_DIRECTION_FORWARD ? sent : [...sent].reverse();
        expect(all.map((m) => m.text)).toEqual(expected);
        for (const p of pages) if (p.messages.length > 1) expect(bytes(p.messages.map((m) => m.text))).toBeLessThanOrEqual(MAX_BYTES);
        expect(pages.length).toBeGreaterThan(5);
      });
    }
  });
}
