/**
 * The few slowest of some timings, slowest first: `slowest` with `entry` in it if it is among
 * the `keep` slowest. For saying when a tail happened (one moment, or spread out).
 */
export function keepSlowest<T extends { ms: number }>(slowest: T[], entry: T, keep: number): T[] {
  if (slowest.length >= keep && entry.ms <= slowest[slowest.length - 1]!.ms) return slowest;
  return [...slowest, entry].sort((x, y) => y.ms - x.ms).slice(0, keep);
}
