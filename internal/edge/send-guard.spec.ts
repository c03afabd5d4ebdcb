import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { MemoryRateLimiter } from "./rate-limiter-memory.js";
import { defaultSendBytesBurst, SendGuard } from "./send-guard.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const refusal = (p: Promise<void>) => p.then(() => undefined, (err: unknown) => ChatError.from(err));

describe("SendGuard", () => {
  it("lets a user's bytes through up to the burst, then refuses with RATE_LIMITED and the wait, per user", async () => {
    const guard = new SendGuard(new MemoryRateLimiter(), { sendBytesPerS: 1_000, sendBytesBurst: 10_000 });
    await guard.admit("mallory", 6_000);
    await guard.admit("mallory", 4_000);
    const refused = await refusal(guard.admit("mallory", 2_000));
    expect(refused?.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
    expect(refused?.retryable).toBe(true);
    expect(refused?.retryAfterMs).toBe(2_000);
    // Another user has a bucket of their own.
    await guard.admit("victim", 10_000);
    // A refused send took nothing: after the wait it goes through.
    vi.advanceTimersByTime(2_000);
    await guard.admit("mallory", 2_000);
  });

  it("the default burst always holds the largest legal message", () => {
    expect(defaultSendBytesBurst(100_000)).toBe(400_000);
    expect(defaultSendBytesBurst(1_000_000)).toBe(4_000_000);
  });
});
