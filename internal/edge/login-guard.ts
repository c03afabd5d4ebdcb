import type { HttpLimitsConfig } from "../config/http-limits.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import type { RateLimiter } from "./rate-limiter.js";

/**
 * Throttles sign-up and log-in at the edge, before the request reaches the
 * accounts service: a refused attempt costs a Redis round trip (or a map lookup),
 * never a scrypt hash, so guessing cannot slow the pool other users' logins use.
 *
 * Log-in: every attempt takes a token of its source address. An attempt from a
 * device the account does not know also takes a token of the account and counts
 * towards its back-off (exponential after LOGIN_BACKOFF_FREE attempts without a
 * success). A known device (DeviceCookies) skips both account limits: an attacker
 * can back off the account for new devices, but never lock the owner out of the
 * devices they already use.
 */
export class LoginGuard {
  constructor(private readonly limiter: RateLimiter, private readonly limits: HttpLimitsConfig) {}

  async beforeSignup(address: string): Promise<void> {
    refuseIf(await this.limiter.take(`signup:addr:${address}`, this.limits.signupPerAddress), "too many sign-ups from this address");
  }

  async beforeLogin(address: string, username: string, knownDevice: boolean): Promise<void> {
    refuseIf(await this.limiter.take(`login:addr:${address}`, this.limits.loginPerAddress), "too many login attempts from this address");
    if (knownDevice) return;
    const account = accountKey(username);
    refuseIf(await this.limiter.take(`login:acct:${account}`, this.limits.loginPerAccount), "too many login attempts for this account");
    refuseIf(await this.limiter.attempt(`login:backoff:${account}`, this.limits.loginBackoff), "too many failed logins for this account; wait or log in from a device you used before");
  }

  /**
   * A success from a device that had to pass the back-off forgets the account's failed attempts
   * (the attempt was counted before the check). One from a known device forgets nothing: it never
   * met the back-off, and the failures are likely a guesser's, whom the owner's routine log-ins
   * must not set free again.
   */
  async loggedIn(username: string, knownDevice: boolean): Promise<void> {
    if (!knownDevice) await this.limiter.clear(`login:backoff:${accountKey(username)}`);
  }
}

/** Usernames are at most 32 characters; longer input cannot name an account but must not grow keys. */
function accountKey(username: string): string {
  return username.slice(0, 64);
}

function refuseIf(waitMs: number, message: string): void {
  if (waitMs > 0) throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, message, { retryAfterMs: waitMs });
}
