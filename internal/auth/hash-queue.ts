import { availableParallelism } from "node:os";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

/**
 * Who is waiting for a hash. `signup` and `login` take turns, so a burst in one cannot starve the
 * other; `known` (a log-in from a device that logged in to that account before: its signed cookie)
 * goes first, so a guesser's attempts, which can never come from such a device, delay the
 * account's owner by at most the one hash already running.
 */
export type HashLane = "known" | "signup" | "login";

export interface HashQueueOptions {
  /**
   * Hashes running at once. node's async scrypt runs on the libuv threadpool (4 threads unless
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
  private running = 0;
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
    while (this.running < this.options.concurrency) {
      const job = this.take();
      if (!job) return;
      if (Date.now() - job.queuedAt > this.options.maxWaitMs) {
        job.reject(this.busy());
        continue;
      }
      this.running++;
      job.run().then(job.resolve, job.reject).finally(() => {
        this.running--;
        this.next();
      });
    }
  }

  private take(): Job | undefined {
    const known = this.lanes.get("known")!.shift();
    if (known) return known;
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
