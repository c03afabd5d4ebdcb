import type { PushMessage, PushProvider, ProviderName } from "./provider.js";
import type { DeviceToken, TokenStore } from "./token-store.js";

export interface Notification {
  userId: string;
  conversationId: string;
  seq: number;
  senderName: string;
  conversationTitle: string;
  text: string;
  muted: boolean;
  excludeDeviceIds?: string[];
}

export interface DispatcherOptions {
  providers: Map<ProviderName, PushProvider>;
  tokens: TokenStore;
  /** PUSH_PREVIEW_LENGTH: code points of the message shown. Default 120. */
  previewLength?: number;
  /** PUSH_RATE_PER_MINUTE: pushes per device per minute; more are deferred, not dropped. Default 30. */
  perDeviceRatePerMinute?: number;
  /** PUSH_MAX_ATTEMPTS: tries per push on retryable failures. Default 5. */
  maxAttempts?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** PUSH_COLLAPSE_WINDOW_MS: pushes for one conversation closer than this are merged. Default 2000. */
  collapseWindowMs?: number;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  onError?: (msg: string, fields: Record<string, unknown>) => void;
}

interface CollapseEntry {
  count: number;
  latest: Notification;
  lastSentAt: number;
  sending: boolean;
  timer?: NodeJS.Timeout;
}

interface Bucket {
  tokens: number;
  at: number;
}

export interface DispatcherStats {
  sent: number;
  retried: number;
  deadTokens: number;
  failed: number;
  collapsed: number;
  muted: number;
}

/** Cuts to `max` code points (never splitting a surrogate pair), with an ellipsis when cut. */
export function preview(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join("") + "…";
}

/**
 * Decides what reaches a user's devices while they are offline: one push per
 * conversation per collapse window (later messages fold into it with a count),
 * a per-device rate limit that defers instead of dropping, retries with
 * exponential backoff and full jitter, and removal of tokens a provider calls dead.
 */
export class PushDispatcher {
  private readonly collapse = new Map<string, CollapseEntry>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly counters: DispatcherStats = { sent: 0, retried: 0, deadTokens: 0, failed: 0, collapsed: 0, muted: 0 };
  private stopped = false;
  private readonly o: Required<Omit<DispatcherOptions, "onError">> & Pick<DispatcherOptions, "onError">;

  constructor(opts: DispatcherOptions) {
    this.o = {
      previewLength: 120,
      perDeviceRatePerMinute: 30,
      maxAttempts: 5,
      baseBackoffMs: 500,
      maxBackoffMs: 30_000,
      collapseWindowMs: 2_000,
      now: Date.now,
      random: Math.random,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      ...opts,
    };
  }

  stats(): DispatcherStats {
    return { ...this.counters };
  }

  /** Queues a notification; resolves once queued (delivery happens in the background). */
  async notify(n: Notification): Promise<void> {
    if (this.stopped) return;
    if (n.muted) {
      this.counters.muted++;
      return;
    }
    const key = `${n.userId}\u0000${n.conversationId}`;
    const entry = this.collapse.get(key);
    const now = this.o.now();
    if (entry && (entry.sending || entry.timer || now - entry.lastSentAt < this.o.collapseWindowMs)) {
      // Fold into the pending push: one notification with a count and the latest preview.
      entry.count++;
      entry.latest = n;
      this.counters.collapsed++;
      if (!entry.timer && !entry.sending) this.schedule(key, entry, entry.lastSentAt + this.o.collapseWindowMs - now);
      return;
    }
    const fresh: CollapseEntry = { count: 1, latest: n, lastSentAt: now, sending: false };
    this.collapse.set(key, fresh);
    this.flush(key, fresh);
  }

  /** The user came online: forget folded-in state so the next offline message pushes at once. */
  clearCollapse(userId: string): void {
    for (const [key, e] of this.collapse) {
      if (key.startsWith(`${userId}\u0000`)) {
        clearTimeout(e.timer);
        this.collapse.delete(key);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const e of this.collapse.values()) clearTimeout(e.timer);
    await Promise.allSettled([...this.inflight]);
  }

  private schedule(key: string, entry: CollapseEntry, delayMs: number): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.collapse.get(key) === entry && !this.stopped) this.flush(key, entry);
    }, Math.max(0, delayMs));
    entry.timer.unref?.();
  }

  private flush(key: string, entry: CollapseEntry): void {
    const count = entry.count;
    const n = entry.latest;
    entry.count = 0;
    entry.sending = true;
    entry.lastSentAt = this.o.now();
    const job = this.deliver(n, count).finally(() => {
      entry.sending = false;
      entry.lastSentAt = this.o.now();
      this.inflight.delete(job);
      // Messages that arrived while sending go out after the window.
      if (entry.count > 0 && this.collapse.get(key) === entry) this.schedule(key, entry, this.o.collapseWindowMs);
    });
    this.inflight.add(job);
  }

  private async deliver(n: Notification, count: number): Promise<void> {
    let tokens: DeviceToken[];
    try {
      tokens = await this.o.tokens.listForUser(n.userId);
    } catch (err) {
      this.o.onError?.("push token lookup failed", { err, user: n.userId });
      return;
    }
    const excluded = new Set(n.excludeDeviceIds ?? []);
    const text = preview(n.text, this.o.previewLength);
    const isGroup = n.conversationTitle !== "";
    const message = (t: DeviceToken): PushMessage => ({
      token: t.token,
      title: isGroup ? n.conversationTitle : n.senderName,
      body: `${count > 1 ? `(${count} new messages) ` : ""}${isGroup ? `${n.senderName}: ` : ""}${text}`,
      collapseKey: n.conversationId,
      data: { conversation_id: n.conversationId, seq: String(n.seq), count: String(count) },
    });
    await Promise.all(tokens.filter((t) => !excluded.has(t.deviceId)).map((t) => this.sendWithRetry(t, message(t))));
  }

  private async sendWithRetry(t: DeviceToken, msg: PushMessage): Promise<void> {
    const provider = this.o.providers.get(t.provider);
    if (!provider) {
      this.counters.failed++;
      this.o.onError?.("no provider configured for token", { provider: t.provider });
      return;
    }
    await this.waitForRate(`${t.provider}:${t.token}`);
    for (let attempt = 1; ; attempt++) {
      const r = await provider.send(msg).catch((err: unknown) => ({ kind: "retry" as const, reason: String(err) }));
      switch (r.kind) {
        case "ok":
          this.counters.sent++;
          return;
        case "dead-token":
          this.counters.deadTokens++;
          await this.o.tokens.removeToken(t.provider, t.token).catch((err: unknown) => this.o.onError?.("dead token removal failed", { err }));
          return;
        case "failed":
          this.counters.failed++;
          this.o.onError?.("push failed", { provider: t.provider, reason: r.reason });
          return;
        case "retry": {
          if (attempt >= this.o.maxAttempts || this.stopped) {
            this.counters.failed++;
            this.o.onError?.("push gave up after retries", { provider: t.provider, reason: r.reason, attempts: attempt });
            return;
          }
          this.counters.retried++;
          const cap = Math.min(this.o.maxBackoffMs, this.o.baseBackoffMs * 2 ** (attempt - 1));
          const backoff = this.o.random() * cap;
          await this.o.sleep(Math.max(backoff, "retryAfterMs" in r && r.retryAfterMs ? r.retryAfterMs : 0));
        }
      }
    }
  }

  /** Token bucket per device token; waits for a token instead of dropping the push. */
  private async waitForRate(key: string): Promise<void> {
    const rate = this.o.perDeviceRatePerMinute / 60_000;
    for (;;) {
      const now = this.o.now();
      const b = this.buckets.get(key) ?? { tokens: this.o.perDeviceRatePerMinute, at: now };
      b.tokens = Math.min(this.o.perDeviceRatePerMinute, b.tokens + (now - b.at) * rate);
      b.at = now;
      this.buckets.set(key, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return;
      }
      await this.o.sleep(Math.ceil((1 - b.tokens) / rate));
    }
  }
}
