/**
 * V8 flags every service process starts with: `make run`, the tests and the bench start them
 * through `Cluster` (cluster.ts), the Kubernetes manifests through `mesh/gen.ts`. They have to
 * be on node's command line: NODE_OPTIONS refuses V8 heap flags, and the heap is sized when the
 * process starts, so a service cannot set them on itself.
 *
 * `--initial-old-space-size`: V8 starts a full mark-compact when the old generation reaches a
 * limit derived from what the last one left alive, and a service keeps only ~25 MB alive. A
 * string over ~128 KB is allocated straight into the old generation, and a long message
 * (100,000 emoji are 400 KB of UTF-16) is decoded once per hop. So a sender of long messages
 * made the edge and chat run a full collection every ~1.5 s, each stopping the process 3-28 ms,
 * and every other user's send that met one waited: the abuse bench's victim send p99 moved
 * 1.9-3.5× beside the attacker, with ~15 full collections each in the run. With the old
 * generation allowed 256 MB before its first collection the run made 4 in all, and the p99
 * moved 0.9-1.6× (docs/performance.md, "Garbage collection under long
 * messages"). The cost is memory that only garbage fills: a busy service's heap may grow toward
 * 256 MB before it is collected, well inside the manifests' 2 GiB limit; an idle one does not
 * grow.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=256"];

/**
 * A service's node command line: our flags, then `extra` (NODE_ARGS, e.g. --cpu-prof; V8 takes
 * the last value of a flag given twice, so these override ours), then the entry point.
 */
export function serviceNodeArgs(entry: string, extra: string | undefined): string[] {
  return ["--enable-source-maps", ...SERVICE_NODE_FLAGS, ...(extra ?? "").split(" ").filter(Boolean), entry];
}

/**
 * Environment a service process starts with, under what the caller sets (its own value wins).
 * The edge: `MALLOC_ARENA_MAX=2`. glibc gives each thread that contends for malloc an arena of
 * its own (up to 8 a core), and each arena keeps what was freed in it; the edge's connect burst
 * mallocs on the main thread and on libuv's pool (each token check is a WebCrypto job there), and
 * the arenas kept ~0.4 KB a session after the burst was over. With two, the idle session at
 * 19,000 held 7.3-8.0 KB of RSS against 7.9-8.5 KB, and the connects cost the edge the same CPU
 * (docs/performance.md, "Stop 35"). Read by glibc when the process starts, so it is set here and
 * in the manifests (mesh/gen.ts), not by the service.
 */
export function serviceEnv(service: string): Record<string, string> {
  return service === "edge" ? { MALLOC_ARENA_MAX: "2" } : {};
}
