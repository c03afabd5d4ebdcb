import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadHttpLimits, type HttpLimitsConfig } from "../config/http-limits.js";
import { ErrorCode } from "../errors/chat-error.js";
import { LoginGuard } from "./login-guard.js";
import { MemoryRateLimiter } from "./rate-limiter-memory.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

function guard(overrides: Partial<HttpLimitsConfig> = {}): LoginGuard {
  return new LoginGuard(new MemoryRateLimiter(), { ...loadHttpLimits("/tmp"), ...overrides });
}

/** The wait a refused call answers, or 0 when it went through. */
async function waitOf(p: Promise<void>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (err) {
    expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_RATE_LIMITED });
    return (err as { retryAfterMs: number }).retryAfterMs;
  }
}

describe("LoginGuard", () => {
  it("backs an account off exponentially after the free failures, for unknown devices only", async () => {
    const g = guard({ loginBackoff: { free: 3, baseMs: 1_000, maxMs: 8_000, windowMs: 600_000 } });
    for (let i = 0; i < 4; i++) expect(await waitOf(g.beforeLogin(`10.0.0.${i}`, "alice", false))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(1_000);
    // The owner's phone, which logged in before, is not held back; another account is not either.
    expect(await waitOf(g.beforeLogin("10.0.1.2", "alice", true))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.1.2", "bob", false))).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(2_000);
    vi.advanceTimersByTime(2_000);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(4_000);
    // The owner logging in from a known device forgets nothing: the failures were a guesser's,
    // whom the owner's routine log-ins must not set free again.
    await g.loggedIn("alice", true);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(4_000);
    // A success from a new device (it had to pass the back-off) forgets the failures.
    vi.advanceTimersByTime(4_000);
    await g.loggedIn("alice", false);
    expect(await waitOf(g.beforeLogin("10.0.1.1", "alice", false))).toBe(0);
  });

  it("limits attempts per source address, known device or not", async () => {
    const g = guard({ loginPerAddress: { perMinute: 6, burst: 2 } });
    expect(await waitOf(g.beforeLogin("10.0.0.1", "alice", true))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.0.1", "bob", true))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.0.1", "carol", false))).toBe(10_000);
    expect(await waitOf(g.beforeLogin("10.0.0.2", "carol", false))).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(await waitOf(g.beforeLogin("10.0.0.1", "carol", false))).toBe(0);
  });

  it("limits attempts per account from unknown devices, whatever their address", async () => {
    const g = guard({ loginPerAccount: { perMinute: 1, burst: 2 } });
    expect(await waitOf(g.beforeLogin("10.0.0.1", "alice", false))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.0.2", "alice", false))).toBe(0);
    expect(await waitOf(g.beforeLogin("10.0.0.3", "alice", false))).toBe(60_000);
  });

  it("limits sign-ups per source address", async () => {
    const g = guard({ signupPerAddress: { perMinute: 2, burst: 3 } });
    for (let i = 0; i < 3; i++) expect(await waitOf(g.beforeSignup("10.0.0.1"))).toBe(0);
    expect(await waitOf(g.beforeSignup("10.0.0.1"))).toBe(30_000);
    expect(await waitOf(g.beforeSignup("10.0.0.2"))).toBe(0);
    vi.advanceTimersByTime(30_000);
    expect(await waitOf(g.beforeSignup("10.0.0.1"))).toBe(0);
  });
});
