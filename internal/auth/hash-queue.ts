import { availableParallelism } from "node:os";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

/**
 * Who is waiting for a hash. `signup` and `login` take turns, so a burst in one cannot starve the
 * other; `known` (a log-in from a device that logged in to that account before: its signed cookie)
 * runs on slots of its own, so a guesser's attempts, which can never come from such a device,
 * never delay the account's owner: not the ones waiting, not the one already running (which
 * cost the owner up to a whole hash, ~70 ms, and tripled their p99 in `make bench`'s abuse
 * scenario). Only a device that once logged in gets there, so the extra slots cannot be
 * taken by an attacker without a password.
 */
export type HashLane = "known" | "signup" | "login";

export interface HashQueueOptions {
  /**
   * Hashes running at once, per kind: up to this many sign-ups and unknown log-ins, and as
   * many known-device log-ins beside them. node's async scrypt runs on the libuv threadpool (4 threads unless
   * UV_THREADPOOL_SIZE says otherwise), which file and DNS work of the process share: a burst
   * must not take all of it, nor more cores than the box has beside the event loop.
   * Default: cores - 1, between 1 and 2.
   */
  concurrency: number;
  /**
   * A hash that waited this long is refused before it starts (RATE_LIMITED, retryable: nothing
   * happened), so every admitted request ends well inside its caller's deadline. Default 2000.
   */
  maxWaitMs: number;
  /** Waiting hashes per lane; more are refused at once. Default 256. */
  maxQueued: number;
}

export const DEFAULT_HASH_QUEUE: HashQueueOptions = {
  concurrency: Math.max(1, Math.min(2, availableParallelism() - 1)),
  maxWaitMs: 2_000,
  maxQueued: 256,
};

interface Job {
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  queuedAt: number;
}

/**
 * Admission for password hashing (scrypt: tens of milliseconds of CPU and 32 MiB each). A burst
 * of sign-ups or wrong passwords waits here, in bounded lanes served in turn, instead of all
 * running at once on the threadpool; what cannot start in time is refused before any work, so
 * a refusal always means "nothing happened, send it again".
 */
export class HashQueue {
  /** Hashes running: known-device log-ins, and the others. */
  private running = { known: 0, other: 0 };
  private readonly lanes = new Map<HashLane, Job[]>([["known", []], ["signup", []], ["login", []]]);
  /** Of signup and login, the lane served last: the next free slot goes to the other one first. */
  private last: "signup" | "login" = "login";

  constructor(private readonly options: HashQueueOptions = DEFAULT_HASH_QUEUE) {}

  run<T>(lane: HashLane, work: () => Promise<T>): Promise<T> {
    const queue = this.lanes.get(lane)!;
    if (queue.length >= this.options.maxQueued) return Promise.reject(this.busy());
    return new Promise<T>((resolve, reject) => {
      queue.push({ run: work, resolve: resolve as (v: unknown) => void, reject, queuedAt: Date.now() });
      this.next();
    });
  }

  private next(): void {
    for (const kind of ["known", "other"] as const) {
      while (this.mayStart(kind)) {
        const job = kind === "known" ? this.lanes.get("known")!.shift() : this.take();
        if (!job) break;
        if (Date.now() - job.queuedAt > this.options.maxWaitMs) {
          job.reject(this.busy());
          continue;
        }
        this.running[kind]++;
        job.run().then(job.resolve, job.reject).finally(() => {
          this.running[kind]--;
          this.next();
        });
      }
    }
  }

  /**
   * A free slot of the kind, and for sign-ups and unknown log-ins no owner's hash running:
   * two hashes at once each take up to twice as long on a small box (scrypt is memory-bound,
   * and vCPUs are often siblings of one core), so only one already running can overlap an
   * owner's. Unless the oldest has waited half its admission time: a steady stream of
   * owners' log-ins never starves sign-ups into refusals.
   */
  private mayStart(kind: "known" | "other"): boolean {
    if (this.running[kind] >= this.options.concurrency) return false;
    return kind === "known" || this.running.known === 0 || this.otherWaitedMs() > this.options.maxWaitMs / 2;
  }

  /** How long the oldest waiting sign-up or unknown log-in has waited (0: none waits). */
  private otherWaitedMs(): number {
    const heads = [this.lanes.get("signup")![0], this.lanes.get("login")![0]].filter((j) => j !== undefined);
    return heads.length === 0 ? 0 : Date.now() - Math.min(...heads.map((j) => j.queuedAt));
  }

  /** The next sign-up or unknown log-in, the two lanes in turn. */
  private take(): Job | undefined {
    const order = this.last === "signup" ? (["login", "signup"] as const) : (["signup", "login"] as const);
    for (const lane of order) {
      const job = this.lanes.get(lane)!.shift();
      if (job) {
        this.last = lane;
        return job;
      }
    }
    return undefined;
  }

  private busy(): ChatError {
    return new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "too many sign-ups and log-ins at once; try again shortly", { retryAfterMs: this.options.maxWaitMs });
  }
}
