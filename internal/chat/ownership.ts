import type { Discovery, Instance } from "../discovery/discovery.js";
import { ownerOf } from "../discovery/rendezvous.js";
import type { Logger } from "../log/logger.js";
import type { ChatCore } from "./service.js";

/**
 * Keeps this instance's caches honest as ownership moves. When the live chat
 * set changes, every conversation whose owner is no longer this instance (or
 * newly is) has its cached head and members dropped: another owner may have
 * appended meanwhile. If the etcd lease is lost, this instance is not in the
 * set others see, so it forgets everything; sends that still reach it are
 * served from fresh heads (the store refuses a stale base_seq), never from
 * what it believed before.
 */
export function watchOwnership(discovery: Discovery, self: Instance, core: ChatCore, log: Logger): void {
  let live = discovery.instances("chat");
  const owner = (id: string, set: Instance[]) => ownerOf(id, set)?.id;
  discovery.watch("chat", (now) => {
    const before = live;
    live = now;
    const moved = (id: string) => owner(id, before) !== owner(id, now) && (owner(id, before) === self.id || owner(id, now) === self.id);
    core.forgetConversations(moved);
    log.info("chat membership changed", { live: now.map((i) => i.id) });
  });
  discovery.onLost(() => core.forgetConversations(() => true));
}
