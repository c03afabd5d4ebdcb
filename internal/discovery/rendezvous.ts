import { createHash } from "node:crypto";
import type { Instance } from "./discovery.js";

function score(key: string, instanceId: string): bigint {
  return createHash("sha256").update(key).update("\u0000").update(instanceId).digest().readBigUInt64BE(0);
}

/**
 * Rendezvous (highest random weight) hashing: every process that sees the same
 * live set picks the same owner for a key, and when an instance joins or leaves
 * only the keys it wins or held move.
 */
export function ownerOf(key: string, instances: readonly Instance[]): Instance | undefined {
  let best: Instance | undefined;
  let bestScore = -1n;
  for (const i of instances) {
    const s = score(key, i.id);
    if (s > bestScore || (s === bestScore && best !== undefined && i.id < best.id)) {
      best = i;
      bestScore = s;
    }
  }
  return best;
}
