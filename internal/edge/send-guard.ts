import { ChatError, ErrorCode } from "../errors/chat-error.js";
import type { BucketRule, RateLimiter } from "./rate-limiter.js";

/** SEND_BYTES_PER_S / SEND_BYTES_BURST: bytes of message text a user may send. */
export interface SendByteLimits {
  /** Bytes a second, shared by every session of the user. Default 262144 (256 KiB). */
  sendBytesPerS: number;
  /**
   * Bytes saved up. Default the largest legal message (4 bytes a code point of
   * MAX_TEXT_LENGTH); never less, or that message could never be sent.
   */
  sendBytesBurst: number;
}

/**
 * The default burst: one of the largest legal messages. It was 2 MiB (five of them): an
 * attacker's five sessions then put five long texts each ahead of everyone's small messages
 * at every hop the moment an attack began, and a victim's send p99 rose 4.5-11x in that
 * second; with one, 1.9-2.1x (docs/security.md, "The attack's first second"). A user who
 * sends several long texts in a row waits about 1.5 s for each after the first (the client
 * resends after retry_after_ms).
 */
export function defaultSendBytesBurst(maxTextLength: number): number {
  return largestTextBytes(maxTextLength);
}

/** The UTF-8 size of the largest legal text: every code point takes at most 4 bytes. */
export function largestTextBytes(maxTextLength: number): number {
  return 4 * maxTextLength;
}

/**
 * Limits what one user's sends cost in bytes, beside the per-session message
 * count: message counts alone let one user queue 80 MB of legal 400 KB messages
 * (docs/security.md, "Sends") that the sequencer and the store then had to work through. One
 * bucket per user, in the edge's RateLimiter (memory on the embedded profile,
 * Redis on production), so the user's sessions on every edge share it.
 */
export class SendGuard {
  private readonly rule: BucketRule;

  constructor(private readonly limiter: RateLimiter, limits: SendByteLimits) {
    this.rule = { perMinute: limits.sendBytesPerS * 60, burst: limits.sendBytesBurst };
  }

  /** Takes the text's bytes from the user's bucket, or refuses the send (RATE_LIMITED, retry_after_ms) and takes nothing. */
  async admit(userId: string, textBytes: number): Promise<void> {
    // A text is never larger than the burst (checked at start-up); min() keeps a bad caller from waiting for ever.
    const wait = await this.limiter.take(`send:bytes:${userId}`, this.rule, Math.min(textBytes, this.rule.burst));
    if (wait > 0) throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too many bytes: wait before sending more", { retryAfterMs: wait });
  }
}
