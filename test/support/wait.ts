import { sleep as realSleep } from "../../internal/run/sleep.js";

/** How a test waits for an outcome: one implementation for every tier. */
export interface WaitOptions {
  /** Give up after this long. Generous by default: a loaded machine is many times slower than a quiet one. */
  timeoutMs?: number;
  /** Poll interval. */
  everyMs?: number;
  /** What was observed, for the message of a test that gives up. */
  seen?: () => string;
  /** How time passes between polls (a fake clock's advance, in unit tests on fake timers). */
  sleep?: (ms: number) => Promise<unknown>;
}


/** Polls `check` until it holds; a test waits for outcomes, never for a fixed window. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, opts: WaitOptions | number = {}): Promise<void> {
  const { timeoutMs = 60_000, everyMs = 20, seen, sleep = realSleep } = typeof opts === "number" ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? ` (saw: ${seen()})` : ""}`);
    await sleep(everyMs);
  }
}
