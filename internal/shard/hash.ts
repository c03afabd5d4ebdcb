/**
 * Cheap, stable hashes for placing keys (users, conversations) on shards and owners. Not
 * cryptographic on purpose: they run for every recipient of every message, and nothing about
 * where a key lives is secret. Stable across processes and releases: changing one moves keys.
 */

/** FNV-1a, 32 bits, over the UTF-16 code units. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finaliser: every input bit moves every output bit (FNV alone mixes its last characters poorly). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Items grouped by their shard, each group in the items' order. */
export function groupByShard<T>(items: Iterable<T>, shardOf: (item: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const shard = shardOf(item);
    let list = groups.get(shard);
    if (!list) groups.set(shard, (list = []));
    list.push(item);
  }
  return groups;
}
