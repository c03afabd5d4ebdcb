import type { Instance } from "./discovery.js";
import { fmix32 } from "../shard/hash.js";

/**
 * The weight of `instanceId` for `key`: two 32-bit FNV-1a-style lanes over
 * `key \0 instanceId`, each finalised, joined into a 52-bit integer (exact in
 * a double). A non-cryptographic hash on purpose: every ownership change scores
 * each cached conversation against each instance, and SHA-256 (3.4 µs a score
 * here) made a change with 100,000 cached conversations block the event loop
 * for seconds, past the etcd lease's TTL; this costs ~0.7 µs. Nothing is secret
 * about who owns a key.
 */
function score(key: string, instanceId: string): number {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  const mix = (c: number) => {
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  };
  for (let i = 0; i < key.length; i++) mix(key.charCodeAt(i));
  mix(0);
  for (let i = 0; i < instanceId.length; i++) mix(instanceId.charCodeAt(i));
  return fmix32(a) * 0x100000 + (fmix32(b ^ a) >>> 12);
}

/**
 * Rendezvous (highest random weight) hashing: every process that sees the same
 * live set picks the same owner for a key, and when an instance joins or leaves
 * only the keys it wins or held move.
 */
export function ownerOf(key: string, instances: readonly Instance[]): Instance | undefined {
  let best: Instance | undefined;
  let bestScore = -1;
  for (const i of instances) {
    const s = score(key, i.id);
    if (s > bestScore || (s === bestScore && best !== undefined && i.id < best.id)) {
      best = i;
      bestScore = s;
    }
  }
  return best;
}
