import v8 from "node:v8";
import vm from "node:vm";

export interface MemorySettleOptions {
  /** Connects since the last settle that make a burst worth settling (0: never settle). */
  afterConnects: number;
  /** How often the edge looks (and the window in which connects count as "still arriving"). */
  checkMs: number;
  /** Least time between two settles, which bounds what they cost. */
  minIntervalMs: number;
}

/** Heap V8 holds beyond what is live, below which a settle would give little back. */
const MIN_SLACK_BYTES = 32 * 1024 * 1024;
/** ... and as a share of the live heap. */
const MIN_SLACK_SHARE = 0.25;
/** Connects still arriving at this share of the sessions held, per check: the burst is not over. */
const BURST_SHARE = 0.05;

export interface HeapFigures {
  used: number;
  total: number;
}

/**
 * Gives back the memory a burst of connects leaves behind. Connecting sessions allocate far
 * more than an idle one keeps (handshakes, tokens, the first catch-up), V8 grows its heap to
 * the burst, and then keeps those pages: at 19,000 idle sessions it reserved about twice the
 * live heap (13 KB of RSS a session against 7.5 KB once compacted), and neither idle time nor
 * heartbeats made its memory reducer give them back (docs/performance.md, "Stop 33"). So once
 * a burst is over (enough connects since the last settle, hardly any in the last check) and the
 * heap holds a large enough slack, the edge makes one compacting collection, the kind V8 makes
 * under memory pressure: tens of milliseconds at 19,000 sessions, at most once a
 * `minIntervalMs`.
 */
export class MemorySettle {
  private connects = 0;
  private connectsAtLastCheck = 0;
  private lastSettleAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Settles made, for /debug/vars (the bench waits for one before it reads RSS). */
  settles = 0;

  private readonly collect: () => void;
  private readonly heap: () => HeapFigures;
  private readonly now: () => number;

  constructor(
    private readonly options: MemorySettleOptions,
    private readonly sessions: () => number,
    private readonly onSettled: (ms: number, before: HeapFigures, after: HeapFigures) => void = () => {},
    /** The process's own by default; unit tests give their own. */
    runtime: { collect?: () => void; heap?: () => HeapFigures; now?: () => number } = {},
  ) {
    this.collect = runtime.collect ?? (options.afterConnects > 0 ? compactingCollection() : () => {});
    this.heap = runtime.heap ?? v8Heap;
    this.now = runtime.now ?? (() => performance.now());
  }

  connected(): void {
    this.connects++;
  }

  start(): void {
    if (this.options.afterConnects <= 0) return;
    this.timer = setInterval(() => this.check(), this.options.checkMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One look: settles if a burst is over and left enough slack. */
  check(): boolean {
    const recent = this.connects - this.connectsAtLastCheck;
    this.connectsAtLastCheck = this.connects;
    if (this.connects < this.options.afterConnects) return false;
    if (recent > this.sessions() * BURST_SHARE) return false;
    if (this.now() - this.lastSettleAt < this.options.minIntervalMs) return false;
    const before = this.heap();
    const slack = before.total - before.used;
    if (slack < MIN_SLACK_BYTES || slack < before.used * MIN_SLACK_SHARE) return false;
    const started = this.now();
    this.collect();
    this.lastSettleAt = this.now();
    this.connects = 0;
    this.connectsAtLastCheck = 0;
    this.settles++;
    this.onSettled(this.lastSettleAt - started, before, this.heap());
    return true;
  }
}

function v8Heap(): HeapFigures {
  const h = v8.getHeapStatistics();
  return { used: h.used_heap_size, total: h.total_heap_size };
}

/**
 * V8's compacting collection, the one it makes under memory pressure. `gc` exists only with
 * --expose-gc; set at run time, the flag gives it to contexts made afterwards, so one is made
 * to take it from (the process's own global stays without it).
 */
export function compactingCollection(): () => void {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as (options: object) => void;
  return () => gc({ type: "major", execution: "sync", flavor: "last-resort" });
}
