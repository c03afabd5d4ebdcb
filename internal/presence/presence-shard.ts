import { fmix32, fnv1a32, groupByShard } from "../shard/hash.js";

/**
 * Presence shards of RedisPresence. Every key of a user, and of that user's sessions, carries
 * the shard's hash tag `{<shard>}`, so one script call reaches one shard's keys, which Redis
 * Cluster keeps in one slot (on one node) and a single Redis simply holds.
 *
 * 256: enough to spread over a cluster of up to a few hundred masters (a shard cannot be split
 * across nodes), few enough that a sweep of every shard each second is a few hundred cheap calls.
 * Fixed: another count moves users to other keys. Should it ever change, the edges' heartbeats
 * re-create every device under its new key within a heartbeat period; last-seen times and
 * subscriptions would be left behind under the old ones.
 */
export const PRESENCE_SHARDS = 256;

/** The user's shard (FNV-1a finalised: a UUID's last characters spread as well as its first). */
export function presenceShard(userId: string): number {
  return fmix32(fnv1a32(userId)) % PRESENCE_SHARDS;
}

/** Items grouped by their user's shard, each group in the items' order. */
export function byPresenceShard<T>(items: Iterable<T>, userOf: (item: T) => string): Map<number, T[]> {
  return groupByShard(items, (item) => presenceShard(userOf(item)));
}

/** What every key of the shard starts with: the installation's prefix, then the hash tag. */
export function shardKeyBase(prefix: string, shard: number): string {
  return `${prefix}{${shard}}`;
}
