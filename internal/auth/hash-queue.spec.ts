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

  it("runs a log-in from a known device at once, on slots of its own: no guess or sign-up, running or waiting, delays it", async () => {
    const q = new HashQueue({ concurrency: 1, maxWaitMs: 60_000, maxQueued: 100 });
    const started: string[] = [];
    const guesses = Array.from({ length: 5 }, (_, i) => work(started, `g${i}`));
    const signup = work(started, "s");
    const results = [...guesses.map((w) => q.run("login", w.fn)), q.run("signup", signup.fn)];
    const owner = work(started, "owner");
    const ownerResult = q.run("known", owner.fn);
    const again = work(started, "owner-2");
    const againResult = q.run("known", again.fn);
    await flush();
    // The guess that was running is not waited for; the known lane is bounded like the others.
    expect(started).toEqual(["g0", "owner"]);
    // Nothing else starts beside an owner's hash, even with a slot free.
    guesses[0]!.finish();
    await flush();
    expect(started).toEqual(["g0", "owner"]);
    owner.finish();
    expect(await ownerResult).toBe("owner");
    await flush();
    expect(started).toEqual(["g0", "owner", "owner-2"]);
    again.finish();
    expect(await againResult).toBe("owner-2");
    // Then the others go one at a time, the sign-up's lane taking its turn.
    await flush();
    expect(started).toEqual(["g0", "owner", "owner-2", "s"]);
    for (const w of [...guesses, signup]) w.finish();
    await Promise.all(results);
  });

  it("a sign-up that waited half its admission time starts beside an owner's log-in: owners cannot starve sign-ups into refusals", async () => {
    const q = new HashQueue({ concurrency: 1, maxWaitMs: 2_000, maxQueued: 100 });
    const started: string[] = [];
    const owner = work(started, "owner");
    const ownerResult = q.run("known", owner.fn);
    const signup = work(started, "s");
    const signupResult = q.run("signup", signup.fn);
    await flush();
    expect(started).toEqual(["owner"]);
    // After 1 s the next owner's log-in to arrive finds the sign-up due: it starts beside the running one.
    await vi.advanceTimersByTimeAsync(1_001);
    const next = work(started, "owner-2");
    const nextResult = q.run("known", next.fn);
    await flush();
    expect(started).toEqual(["owner", "s"]);
    owner.finish();
    await flush();
    expect(started).toEqual(["owner", "s", "owner-2"]);
    for (const w of [next, signup]) w.finish();
    expect(await Promise.all([ownerResult, nextResult, signupResult])).toEqual(["owner", "owner-2", "s"]);
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
