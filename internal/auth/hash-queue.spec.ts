import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { HashQueue } from "./hash-queue.js";

/** A unit of work the test finishes by hand. */
function work(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  return { fn: async () => { log.push(name); await done; return name; }, finish };
}

const flush = () => vi.advanceTimersByTimeAsync(0);

describe("HashQueue", () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it("runs at most `concurrency` hashes, and a login waits behind at most one sign-up of a burst", async () => {
    const q = new HashQueue({ concurrency: 2, maxWaitMs: 60_000, maxQueued: 100 });
    const started: string[] = [];
    const signups = Array.from({ length: 20 }, (_, i) => work(started, `s${i}`));
    const results = signups.map((w) => q.run("signup", w.fn));
    const login = work(started, "login");
    const loginResult = q.run("login", login.fn);
    await flush();
    expect(started).toEqual(["s0", "s1"]);
    signups[0]!.finish();
    await flush();
    // The free slot goes to the waiting login, not to the 18 sign-ups queued before it.
    expect(started).toEqual(["s0", "s1", "login"]);
    login.finish();
    expect(await loginResult).toBe("login");
    for (const w of signups) w.finish();
    expect(await Promise.all(results)).toEqual(signups.map((_, i) => `s${i}`));
  });

  it("serves a log-in from a known device before every waiting guess and sign-up", async () => {
    const q = new HashQueue({ concurrency: 1, maxWaitMs: 60_000, maxQueued: 100 });
    const started: string[] = [];
    const guesses = Array.from({ length: 5 }, (_, i) => work(started, `g${i}`));
    const signup = work(started, "s");
    const results = [...guesses.map((w) => q.run("login", w.fn)), q.run("signup", signup.fn)];
    const owner = work(started, "owner");
    const ownerResult = q.run("known", owner.fn);
    await flush();
    expect(started).toEqual(["g0"]);
    guesses[0]!.finish();
    await flush();
    // Behind the one hash that was running, and nothing else.
    expect(started).toEqual(["g0", "owner"]);
    owner.finish();
    expect(await ownerResult).toBe("owner");
    for (const w of [...guesses, signup]) w.finish();
    await Promise.all(results);
  });

  it("refuses, before any work, a hash that waited longer than maxWaitMs, and a lane that is full", async () => {
    const q = new HashQueue({ concurrency: 1, maxWaitMs: 2_000, maxQueued: 2 });
    const started: string[] = [];
    const first = work(started, "a");
    const a = q.run("signup", first.fn);
    const b = q.run("signup", work(started, "b").fn).catch((e: unknown) => e);
    const c = q.run("signup", work(started, "c").fn).catch((e: unknown) => e);
    const full = (await q.run("signup", work(started, "d").fn).catch((e: unknown) => e)) as ChatError;
    expect(full.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
    expect(full.retryable).toBe(true);
    await vi.advanceTimersByTimeAsync(2_001);
    first.finish();
    expect(await a).toBe("a");
    for (const late of [(await b) as ChatError, (await c) as ChatError]) {
      expect(late.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
      expect(late.retryAfterMs).toBeGreaterThan(0);
    }
    expect(started).toEqual(["a"]);
  });
});
