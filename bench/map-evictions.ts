/**
 * What a bounded recency Map costs per insert once it is full, evicting the oldest entry one
 * `map.delete(map.keys().next().value)` at a time against `trimOldest` (internal/run/trim-oldest.ts),
 * with a plain `set` as the baseline measured in the same run:
 *   node dist/bench/map-evictions.js [inserts=400000]
 * Prints µs per insert at 10,000 and 100,000 entries, and each as a ratio to the baseline.
 */
import { trimOldest } from "../internal/run/trim-oldest.js";

const N = Number(process.argv[2] ?? 400_000);

function perInsert(bound: number, evict: (m: Map<string, number>) => void): number {
  const m = new Map<string, number>();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const key = `c\u0000${i}`;
    m.delete(key);
    m.set(key, i);
    evict(m);
  }
  if (m.size > bound) throw new Error(`bound not kept: ${m.size} > ${bound}`);
  return ((performance.now() - t0) * 1000) / N;
}

for (const bound of [10_000, 100_000]) {
  // The baseline: a set, the map emptied whole when it reaches the bound (no eviction walk).
  const base = perInsert(bound, (m) => { if (m.size >= bound) m.clear(); });
  const oneAtATime = perInsert(bound, (m) => { if (m.size > bound) m.delete(m.keys().next().value!); });
  const trimmed = perInsert(bound, (m) => trimOldest(m, bound));
  const f = (us: number) => `${us.toFixed(2)} µs (${(us / base).toFixed(1)}x)`;
  console.log(`${bound} entries: plain set ${base.toFixed(2)} µs; oldest deleted one at a time ${f(oneAtATime)}; trimOldest ${f(trimmed)}`);
}
