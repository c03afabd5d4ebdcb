/**
 * Keeps a Map used as a recency list (oldest first: insertion order, or delete-then-set on use)
 * at `max` entries at most: past it, the oldest go, down to `max - max/4`, in one pass of one
 * iterator.
 *
 * Why not `map.delete(map.keys().next().value)` on every insert past the bound: V8 leaves a hole
 * for each deleted entry until it rehashes the table, and every new iterator walks those holes
 * from the start, so each such eviction costs time in proportion to the evictions before it. At
 * 10,000 entries that was ~10 µs an insert, at 100,000 ~47 µs, against ~0.3 µs for a plain set
 * (docs/performance.md, "Evictions that walked every hole").
 */
export function trimOldest<K, V>(map: Map<K, V>, max: number): void {
  if (map.size <= max) return;
  let drop = map.size - max + Math.floor(max / 4);
  for (const key of map.keys()) {
    if (drop-- <= 0) return;
    map.delete(key);
  }
}
