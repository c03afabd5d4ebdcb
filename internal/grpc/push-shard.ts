import { fnv1a32, groupByShard } from "../shard/hash.js";

/**
 * The notifier decides with what it holds in memory (collapse windows, holds, reads, which
 * devices show what), and in production it runs as several replicas: a user's messages,
 * reads, comings online and withdrawals must meet in one of them. Every call to the
 * notifier about users names one shard of them in `x-push-shard`, and behind sidecars
 * Envoy's ring hash on that header sends each shard to one replica (mesh/topology.yaml); a
 * call about many users is cut per shard. Without sidecars an installation runs one
 * notifier, and the header changes nothing.
 */
export const PUSH_SHARD_HEADER = "x-push-shard";

/** Enough shards for ring hash to spread them over a few replicas, few enough that one tick's calls stay a handful. */
export const PUSH_SHARDS = 16;

/** The user's shard: FNV-1a of the id (cheap: it runs for every recipient of every message). */
export function pushShard(userId: string): number {
  return fnv1a32(userId) % PUSH_SHARDS;
}

/** Items grouped by their user's shard, each group in the items' order. */
export function byPushShard<T>(items: Iterable<T>, userOf: (item: T) => string): Map<number, T[]> {
  return groupByShard(items, (item) => pushShard(userOf(item)));
}

/** The metadata of a call about the shard's users. */
export function pushShardHeader(shard: number): Record<string, string> {
  return { [PUSH_SHARD_HEADER]: String(shard) };
}
