import type { Discovery, Instance } from "../discovery/discovery.js";
import { ownerOf } from "../discovery/rendezvous.js";
import type { Logger } from "../log/logger.js";

/** What ownership moves change in chat: its caches of conversations (ChatCore). */
export interface ConversationCaches {
  /** Every conversation some cache of this instance holds. */
  cachedConversationIds(): Iterable<string>;
  forgetConversations(pred: (conversationId: string) => boolean): void;
}

/** Conversations scored per slice before the event loop gets a turn. */
const SLICE = 2_000;

/**
 * The cached conversations whose owner moves to or from `self` when the live set
 * goes from `before` to `now`. Scored in slices with a turn of the event loop
 * between them: with 100,000 cached conversations and a few instances a change
 * costs a few hundred thousand scores, and a loop blocked that long misses etcd
 * keep-alives (a deploy would cascade into lease losses).
 */
export async function movedConversations(ids: Iterable<string>, before: readonly Instance[], now: readonly Instance[], self: string): Promise<Set<string>> {
  const moved = new Set<string>();
  let n = 0;
  for (const id of ids) {
    const was = ownerOf(id, before)?.id;
    const is = ownerOf(id, now)?.id;
    if (was !== is && (was === self || is === self)) moved.add(id);
    if (++n % SLICE === 0) await new Promise((r) => setImmediate(r));
  }
  return moved;
}

/**
 * Keeps this instance's caches honest as ownership moves. When the live chat
 * set changes, every conversation whose owner is no longer this instance (or
 * newly is) has its cached head and members dropped: another owner may have
 * appended meanwhile. If the etcd lease is lost, this instance is not in the
 * set others see, so it forgets everything; sends that still reach it are
 * served from fresh heads (the store refuses a stale base_seq), never from
 * what it believed before. The same holds for a send served while a change is
 * still being scored: a stale head is refused by the store and reloaded.
 */
export function watchOwnership(discovery: Discovery, self: Instance, caches: ConversationCaches, log: Logger): void {
  let live = discovery.instances("chat");
  discovery.watch("chat", (now) => {
    const before = live;
    live = now;
    // A snapshot: a conversation cached after this change was loaded after it, so it is fresh.
    const ids = [...caches.cachedConversationIds()];
    void movedConversations(ids, before, now, self.id).then((moved) => {
      caches.forgetConversations((id) => moved.has(id));
      log.info("chat membership changed", { live: now.map((i) => i.id), cached: ids.length, moved: moved.size });
    });
  });
  discovery.onLost(() => caches.forgetConversations(() => true));
}
