import { context, SpanKind, SpanStatusCode, trace, type Context } from "@opentelemetry/api";
import { preview } from "./preview.js";
import { ConfigError } from "../config/env.js";
import { Logger } from "../log/logger.js";
import { ChatMetrics } from "../telemetry/telemetry.js";
import type { ProviderName, PushMessage, PushProvider, PushResult } from "./provider.js";
import { RecentActivity } from "./recent-activity.js";
import { deviceKey, ShownNotifications, type ReadUpdate, type ShownDevice } from "./shown-notifications.js";
import type { TokenStore } from "./token-store.js";

/** One new message for one offline recipient. */
export interface Notification {
  userId: string;
  conversationId: string;
  seq: number;
  senderName: string;
  /** Empty for a direct conversation (the sender's name is the title then). */
  conversationTitle: string;
  text: string;
  /** The recipient muted the conversation: no push at all. */
  muted: boolean;
  /** Devices that must not get this push (the user's devices with a live session get the message over it). */
  excludeDeviceIds?: string[];
}

export interface DispatcherOptions {
  providers: Map<ProviderName, PushProvider>;
  tokens: TokenStore;
  /** PUSH_PREVIEW_LENGTH: code points of the message shown, then "…"; 0 shows no text. Default 120. */
  previewLength?: number;
  /** PUSH_RATE_PER_MINUTE: pushes per device token per minute (token bucket, bursts up to the same number); more wait, they are not dropped. Default 30. */
  perDeviceRatePerMinute?: number;
  /** PUSH_MAX_ATTEMPTS: tries of one push on `retry` outcomes before giving up. Default 5. */
  maxAttempts?: number;
  /** First retry waits up to this (full jitter), doubling per attempt. Default 500 ms. */
  baseBackoffMs?: number;
  /** Cap of the backoff (a provider's Retry-After may ask for longer and is honoured). Default 30000 ms. */
  maxBackoffMs?: number;
  /** PUSH_COLLAPSE_WINDOW_MS: at most one push per (user, conversation) per window; later messages fold into the next one. Default 2000 ms. */
  collapseWindowMs?: number;
  /** A conversation quiet for this long starts its "N new messages" count again. Default 1 hour. */
  countResetMs?: number;
  /**
   * PUSH_HOLD_MS: while a device of the user was used within `holdActiveMs`, a push waits this
   * long and is dropped if a device reads the message meanwhile; 0 turns holding off. Default
   * 3000: an open, focused window marks a message read within a second or two of its arrival
   * (delivery, render, the reader's glance), and a phone in a pocket still buzzes within seconds.
   */
  holdMs?: number;
  /**
   * PUSH_HOLD_ACTIVE_MS: a device sent, marked read or typed within this long before a message:
   * the user is at that device, so the push is held. Default 10000: someone who did any of
   * these in the last ten seconds is looking at that screen; someone who did not may have left
   * it open and walked off with the phone, which should then buzz at once.
   */
  holdActiveMs?: number;
  /**
   * PUSH_READ_UPDATE_WINDOW_MS: reads are gathered per user for this long into one background
   * update per device that shows a notification, not one per read (a user scrolling through
   * five conversations costs one update). Default 1000.
   */
  readUpdateWindowMs?: number;
  /** `stop()` waits this long for pending pushes by default, then abandons them (logged). Default 5000 ms. */
  stopGraceMs?: number;
  /** Clock (ms). Default Date.now. */
  now?: () => number;
  /** Uniform [0, 1) for the backoff jitter. Default Math.random. */
  random?: () => number;
  /** Waits (collapse window, backoff, rate limit). Default: an unref'd timer. The dispatcher may stop waiting early. */
  sleep?: (ms: number) => Promise<void>;
  /** Warnings: pushes that failed or were given up, token store errors. Default: the notifier's logger. */
  onError?: (msg: string, fields: Record<string, unknown>) => void;
}

/** Counters since start, for metrics and tests. */
export interface DispatcherStats {
  /** Pushes the provider accepted. */
  sent: number;
  /** Retries scheduled after a `retry` outcome. */
  retried: number;
  /** Tokens found dead and removed from the store. */
  deadTokens: number;
  /** Pushes that failed permanently or were given up after maxAttempts. */
  failed: number;
  /** Pushes replaced by a newer one for the same conversation before they were sent. */
  collapsed: number;
  /** Notifications skipped because the conversation is muted. */
  muted: number;
  /** Pushes that had to wait for the per-device rate limit. */
  deferred: number;
  /** Pushes waiting now (collapse window, backoff or rate limit): a gauge. */
  pending: number;
  /** Pushes held back because a device of the user was in use. */
  held: number;
  /** Pushes dropped because a device read the message before they went out. */
  readDropped: number;
  /** Background updates handed to devices after a read on another device. */
  readUpdates: number;
}

/** Pushes of one (user, conversation). */
interface Thread {
  readonly key: string;
  readonly userId: string;
  readonly conversationId: string;
  /** Messages since the user was last online (or since the conversation went quiet): the "N new messages". */
  count: number;
  /** The newest message not yet handed to the devices. */
  latest: Notification | undefined;
  ctx: Context;
  lastEmitAt: number;
  lastActivityAt: number;
  /** Waiting for the end of the collapse window; `wake` ends the wait early. */
  wake: (() => void) | undefined;
  /** The last seq withdrawn (deleted for everyone): a fan-out of it that was looking up tokens stops. */
  withdrawnSeq: number;
  /** The user read up to here: a push of an earlier seq is moot. */
  readSeq: number;
  /** The newest seq notified: what the unread count counts up to. */
  headSeq: number;
  closed: boolean;
  /** Fan-outs run one after the other, so an older one never overtakes a newer one. */
  chain: Promise<void>;
  busy: number;
  lanes: Set<Lane>;
}

/** One push to one device, replaced in place by a newer one of the same thread. */
interface Job {
  thread: Thread;
  deviceId: string;
  msg: PushMessage;
  attempts: number;
  notBefore: number;
  ctx: Context;
  deferred: boolean;
  /** A background read update: the reads it carries (a newer update of the same user merges them). */
  reads?: Map<string, ReadUpdate>;
}

/** The queue of one device token: one request at a time, a token bucket, jobs keyed by thread. */
interface Lane {
  readonly key: string;
  readonly provider: ProviderName;
  readonly token: string;
  tokens: number;
  refilledAt: number;
  jobs: Map<string, Job>;
  inflight: Job | undefined;
  running: boolean;
  wake: (() => void) | undefined;
  dead: boolean;
}

const SWEEP_INTERVAL_MS = 60_000;

/**
 * Decides what reaches a user's devices while they are offline.
 *
 * - Muted conversations get nothing.
 * - Collapse per (user, conversation): the first message is pushed at once; while
 *   that push is pending or was sent less than `collapseWindowMs` ago, newer
 *   messages replace the pending one, and one push goes out at the end of the
 *   window with the latest preview and "(N new messages)" (N counts every message
 *   since the user was last online, because the device shows only the newest
 *   notification of a collapse key). `clearCollapse(user)` starts over.
 * - Per device token: one request at a time and a token bucket of
 *   `perDeviceRatePerMinute`; over it, pushes wait (and keep being replaced by
 *   newer ones of the same conversation), nothing is dropped.
 * - `retry` outcomes back off exponentially with full jitter (at least the
 *   provider's Retry-After) up to `maxAttempts`, then give up with a logged
 *   reason; `dead-token` removes the token from the store; `failed` is logged.
 *
 * State is in memory: a notifier that restarts forgets pending pushes (after
 * `stop()` tried to send them) and collapse counts.
 */
export class PushDispatcher {
  private readonly o: Required<Omit<DispatcherOptions, "sleep" | "onError">> & Pick<DispatcherOptions, "sleep">;
  private readonly warn: (msg: string, fields: Record<string, unknown>) => void;
  private readonly threads = new Map<string, Map<string, Thread>>();
  private readonly lanes = new Map<string, Lane>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly wakers = new Set<() => void>();
  private readonly counters = { sent: 0, retried: 0, deadTokens: 0, failed: 0, collapsed: 0, muted: 0, deferred: 0, held: 0, readDropped: 0, readUpdates: 0 };
  private readonly activity: RecentActivity;
  private readonly shown = new ShownNotifications();
  /** Per user: the reads gathered for the next background update, per device that shows them. */
  private readonly owed = new Map<string, { devices: Map<string, { device: ShownDevice; reads: Map<string, ReadUpdate> }>; thread: Thread }>();
  private readonly ratePerMs: number;
  private lastSweep: number;
  private stopping = false;
  private abandoned = false;
  private stopped: Promise<void> | undefined;

  constructor(opts: DispatcherOptions) {
    this.o = {
      previewLength: 120,
      perDeviceRatePerMinute: 30,
      maxAttempts: 5,
      baseBackoffMs: 500,
      maxBackoffMs: 30_000,
      collapseWindowMs: 2_000,
      countResetMs: 3_600_000,
      holdMs: 3_000,
      holdActiveMs: 10_000,
      readUpdateWindowMs: 1_000,
      stopGraceMs: 5_000,
      now: Date.now,
      random: Math.random,
      ...withoutUndefined(opts),
    };
    const o = this.o;
    const check = (ok: boolean, what: string) => {
      if (!ok) throw new ConfigError(`push dispatcher: ${what}`);
    };
    check(Number.isInteger(o.previewLength) && o.previewLength >= 0, `previewLength must be an integer >= 0, got ${o.previewLength}`);
    check(o.perDeviceRatePerMinute > 0, `perDeviceRatePerMinute must be > 0, got ${o.perDeviceRatePerMinute}`);
    check(Number.isInteger(o.maxAttempts) && o.maxAttempts >= 1, `maxAttempts must be an integer >= 1, got ${o.maxAttempts}`);
    check(o.baseBackoffMs >= 0 && o.maxBackoffMs >= o.baseBackoffMs, `need 0 <= baseBackoffMs <= maxBackoffMs, got ${o.baseBackoffMs}, ${o.maxBackoffMs}`);
    check(o.collapseWindowMs >= 0, `collapseWindowMs must be >= 0, got ${o.collapseWindowMs}`);
    check(o.countResetMs >= o.collapseWindowMs, "countResetMs must be >= collapseWindowMs");
    check(o.holdMs >= 0 && o.holdActiveMs >= 0 && o.readUpdateWindowMs >= 0, `holdMs, holdActiveMs and readUpdateWindowMs must be >= 0, got ${o.holdMs}, ${o.holdActiveMs}, ${o.readUpdateWindowMs}`);
    for (const [name, p] of o.providers) check(p.name === name, `provider registered as ${name} says it is ${p.name}`);
    this.ratePerMs = o.perDeviceRatePerMinute / 60_000;
    this.activity = new RecentActivity(o.holdActiveMs);
    this.lastSweep = o.now();
    if (opts.onError) this.warn = opts.onError;
    else {
      const log = new Logger("notifier");
      this.warn = (msg, fields) => log.warn(msg, fields);
    }
  }

  stats(): DispatcherStats {
    let pending = 0;
    for (const lane of this.lanes.values()) pending += lane.jobs.size;
    for (const threads of this.threads.values()) for (const t of threads.values()) if (t.latest) pending++;
    return { ...this.counters, pending };
  }

  /**
   * Queues the push of one message to one user's devices and returns; delivery
   * happens in the background. After `stop()` it does nothing.
   */
  async notify(n: Notification): Promise<void> {
    if (!n.userId || !n.conversationId) throw new TypeError("notify needs a userId and a conversationId");
    if (this.stopping) {
      this.warn("push dispatcher is stopping; notification not pushed", { user: n.userId, conversation: n.conversationId, seq: n.seq });
      return;
    }
    if (n.muted) {
      this.counters.muted++;
      this.metric("none", "muted");
      return;
    }
    const now = this.o.now();
    this.maybeSweep(now);
    this.shown.newer(n.userId, n.conversationId, n.seq);
    const t = this.thread(n.userId, n.conversationId);
    t.headSeq = Math.max(t.headSeq, n.seq);
    if (n.seq <= t.readSeq) {
      // Its read came first (chat reports reads and messages on separate calls).
      this.dropRead();
      return;
    }
    if (!t.latest && !t.wake && now - t.lastActivityAt > this.o.countResetMs) t.count = 0;
    t.count++;
    t.lastActivityAt = now;
    if (t.latest) this.collapse();
    t.latest = n;
    t.ctx = context.active();
    if (t.wake) return; // the end of the window (or of the hold) sends the latest
    let due = t.lastEmitAt + this.o.collapseWindowMs;
    if (this.o.holdMs > 0 && this.activity.activeAt(n.userId, now)) {
      // The user is at another device: give it the time to read this before a phone buzzes.
      due = Math.max(due, now + this.o.holdMs);
      this.counters.held++;
      this.metric("none", "held");
    }
    if (now >= due) {
      this.emit(t);
      return;
    }
    this.track(
      this.pause(due - now, (wake) => (t.wake = wake)).then(() => {
        t.wake = undefined;
        this.emit(t);
      }),
    );
  }

  /** The user came online: pending pushes are moot, and the next offline message pushes at once with a fresh count. */
  clearCollapse(userId: string): void {
    const threads = this.threads.get(userId);
    if (!threads) return;
    this.threads.delete(userId);
    for (const t of threads.values()) {
      t.closed = true;
      t.latest = undefined;
      t.wake?.();
      for (const lane of t.lanes) lane.jobs.delete(t.key);
    }
  }

  /**
   * A device of the user was just used (sent or typed): the user's pushes are held for a
   * while. Which device does not matter: the ones pushes go to have no live session.
   */
  active(userId: string): void {
    this.activity.used(userId, this.o.now());
  }

  /**
   * The user's read pointer in the conversation reached `readSeq` (a use of a device too):
   * a push of a message up to it that has not gone out is dropped, and the devices that
   * show a notification of the conversation are owed a background update (sent once per
   * user per `readUpdateWindowMs`).
   */
  read(userId: string, conversationId: string, readSeq: number): void {
    const now = this.o.now();
    this.activity.read(userId, conversationId, readSeq, now);
    const t = this.threads.get(userId)?.get(conversationId);
    if (t && readSeq > t.readSeq) {
      t.readSeq = readSeq;
      t.count = Math.min(t.count, Math.max(0, t.headSeq - readSeq));
      if (t.latest && t.latest.seq <= readSeq) {
        t.latest = undefined;
        this.dropRead();
      }
      for (const lane of t.lanes) {
        const job = lane.jobs.get(t.key);
        if (job && Number(job.msg.data["seq"]) <= readSeq && lane.inflight !== job) {
          lane.jobs.delete(t.key);
          this.dropRead();
        }
      }
    }
    const owed = this.shown.read(userId, conversationId, readSeq, now);
    if (owed) for (const device of owed.devices) this.owe(userId, device, owed.update);
  }

  /**
   * A message was deleted for everyone: a push of it that has not gone out is dropped,
   * whether it waits for its collapse window, for its devices' tokens or in a device's
   * queue (a request already sent to a provider cannot be called back). Returns how many.
   */
  withdraw(userIds: string[], conversationId: string, seq: number): number {
    let withdrawn = 0;
    for (const userId of userIds) {
      const t = this.threads.get(userId)?.get(conversationId);
      if (!t) continue;
      t.withdrawnSeq = seq;
      if (t.latest?.seq === seq) {
        t.latest = undefined;
        withdrawn++;
      }
      for (const lane of t.lanes) {
        const job = lane.jobs.get(t.key);
        if (job && job.msg.data["seq"] === String(seq) && lane.inflight !== job) {
          lane.jobs.delete(t.key);
          withdrawn++;
        }
      }
    }
    return withdrawn;
  }

  /**
   * Stops taking notifications. Pushes waiting for their collapse window, backoff
   * or rate limit get one immediate attempt (no more retries); whatever is still
   * pending after `graceMs` is abandoned, with a logged count.
   */
  stop(graceMs = this.o.stopGraceMs): Promise<void> {
    this.stopped ??= this.drain(graceMs);
    return this.stopped;
  }

  private async drain(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const wake of [...this.wakers]) wake();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"deadline">((resolve) => {
      timer = setTimeout(() => resolve("deadline"), graceMs);
      timer.unref();
    });
    while (this.background.size > 0) {
      if ((await Promise.race([Promise.allSettled([...this.background]), deadline])) === "deadline") break;
    }
    clearTimeout(timer);
    this.abandoned = true;
    const left = this.stats().pending;
    if (left > 0) this.warn("push dispatcher stopped with pushes not sent", { pending: left, graceMs });
  }

  private thread(userId: string, conversationId: string): Thread {
    let threads = this.threads.get(userId);
    if (!threads) this.threads.set(userId, (threads = new Map()));
    let t = threads.get(conversationId);
    if (!t) {
      t = {
        key: `${userId}\u0000${conversationId}`,
        userId,
        conversationId,
        count: 0,
        latest: undefined,
        ctx: context.active(),
        lastEmitAt: -Infinity,
        lastActivityAt: this.o.now(),
        wake: undefined,
        withdrawnSeq: 0,
        readSeq: this.activity.readSeq(userId, conversationId),
        headSeq: 0,
        closed: false,
        chain: Promise.resolve(),
        busy: 0,
        lanes: new Set(),
      };
      threads.set(conversationId, t);
    }
    return t;
  }

  /** Hands the thread's latest message to its devices' lanes. */
  private emit(t: Thread): void {
    const n = t.latest;
    if (!n || t.closed) return;
    t.latest = undefined;
    t.lastEmitAt = this.o.now();
    const count = t.count;
    const ctx = t.ctx;
    t.busy++;
    t.chain = t.chain
      .then(() => this.fanOut(t, n, count, ctx))
      .catch((err: unknown) => this.warn("push fan-out failed", { err, user: t.userId }))
      .finally(() => {
        t.busy--;
      });
    this.track(t.chain);
  }

  private async fanOut(t: Thread, n: Notification, count: number, ctx: Context): Promise<void> {
    let devices;
    try {
      devices = await this.o.tokens.listForUser(t.userId);
    } catch (err) {
      this.counters.failed++;
      this.metric("none", "failed");
      this.warn("push token lookup failed; push not sent", { err, user: t.userId, conversation: t.conversationId });
      return;
    }
    if (t.closed || t.withdrawnSeq === n.seq || n.seq <= t.readSeq) return;
    const excluded = new Set(n.excludeDeviceIds ?? []);
    const content = this.compose(n, count);
    for (const d of devices) {
      if (excluded.has(d.deviceId)) continue;
      if (!this.o.providers.has(d.provider)) {
        this.counters.failed++;
        this.metric(d.provider, "failed");
        this.warn("no push provider configured for a registered token", { provider: d.provider, user: t.userId, device: d.deviceId });
        continue;
      }
      const lane = this.lane(d.provider, d.token);
      t.lanes.add(lane);
      this.enqueue(lane, { thread: t, deviceId: d.deviceId, msg: { ...content, token: d.token }, attempts: 0, notBefore: this.o.now(), ctx, deferred: false });
    }
  }

  private compose(n: Notification, count: number): Omit<PushMessage, "token"> {
    const group = n.conversationTitle !== "";
    let body: string;
    if (this.o.previewLength === 0) body = count > 1 ? `${count} new messages` : "New message";
    else {
      const line = `${group ? `${n.senderName}: ` : ""}${preview(n.text, this.o.previewLength)}`;
      body = count > 1 ? `(${count} new messages) ${line}` : line;
    }
    return {
      title: group ? n.conversationTitle : n.senderName,
      body,
      collapseKey: n.conversationId,
      data: { conversation_id: n.conversationId, seq: String(n.seq), count: String(count) },
    };
  }

  private lane(provider: ProviderName, token: string): Lane {
    const key = `${provider}\u0000${token}`;
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { key, provider, token, tokens: this.o.perDeviceRatePerMinute, refilledAt: this.o.now(), jobs: new Map(), inflight: undefined, running: false, wake: undefined, dead: false };
      this.lanes.set(key, lane);
    }
    return lane;
  }

  /**
   * Queues a job. A queued job of the same thread is replaced in place: the new
   * content keeps the old one's turn (or backoff) and attempt count.
   */
  private enqueue(lane: Lane, job: Job): void {
    const prev = lane.jobs.get(job.thread.key);
    if (prev?.reads && job.reads) {
      // A newer read update of the same user: it carries the reads of both, the newer per conversation.
      const reads = new Map(prev.reads);
      for (const [id, r] of job.reads) reads.set(id, r);
      job.reads = reads;
      job.msg = readUpdateMessage(job.msg.token, reads);
    }
    if (prev) {
      if (!job.reads) this.collapse();
      job.attempts = prev.attempts;
      job.notBefore = prev.notBefore;
      job.deferred = prev.deferred;
    }
    lane.jobs.set(job.thread.key, job);
    if (lane.running) lane.wake?.();
    else {
      lane.running = true;
      this.track(this.runLane(lane));
    }
  }

  /** Sends the lane's jobs one at a time, earliest due first, within the rate limit. */
  private async runLane(lane: Lane): Promise<void> {
    try {
      await this.drainLane(lane);
    } finally {
      lane.running = false;
      if (lane.dead) lane.jobs.clear();
      else if (lane.jobs.size === 0) this.forgetLaneIfRested(lane, this.o.now());
    }
  }

  private async drainLane(lane: Lane): Promise<void> {
    while (lane.jobs.size > 0 && !lane.dead && !this.abandoned) {
      const now = this.o.now();
      this.refill(lane, now);
      let job: Job | undefined;
      for (const j of lane.jobs.values()) if (!job || j.notBefore < job.notBefore) job = j;
      if (!job) break;
      if (!this.stopping) {
        const backoff = job.notBefore - now;
        const rate = lane.tokens >= 1 ? 0 : Math.ceil((1 - lane.tokens) / this.ratePerMs);
        if (rate > 0 && backoff <= 0) {
          for (const j of lane.jobs.values()) {
            if (!j.deferred && j.notBefore <= now) {
              j.deferred = true;
              this.counters.deferred++;
            }
          }
        }
        const wait = Math.max(backoff, rate);
        if (wait > 0) {
          await this.pause(wait, (wake) => (lane.wake = wake));
          lane.wake = undefined;
          continue;
        }
        lane.tokens -= 1;
      }
      lane.jobs.delete(job.thread.key);
      lane.inflight = job;
      try {
        await this.attempt(lane, job);
      } finally {
        lane.inflight = undefined;
      }
    }
  }

  private async attempt(lane: Lane, job: Job): Promise<void> {
    const provider = this.o.providers.get(lane.provider)!;
    job.attempts++;
    const r = await this.send(provider, job);
    const fields = { provider: lane.provider, user: job.thread.userId, device: job.deviceId, conversation: job.thread.conversationId, attempts: job.attempts };
    switch (r.kind) {
      case "ok": {
        this.counters.sent++;
        this.metric(lane.provider, "sent");
        if (job.reads) return;
        const t = job.thread;
        const device = { deviceId: job.deviceId, provider: lane.provider, token: lane.token };
        // A read that overtook this push (it was in flight) is owed to the device at once.
        const late = this.shown.shown(t.userId, t.conversationId, Number(job.msg.data["seq"]), device, t.readSeq, this.o.now());
        if (late) this.owe(t.userId, device, late);
        return;
      }
      case "dead-token": {
        // Whatever else waits for this token is moot.
        lane.dead = true;
        lane.jobs.clear();
        if (this.lanes.get(lane.key) === lane) this.lanes.delete(lane.key);
        try {
          await this.o.tokens.removeToken(lane.provider, lane.token);
        } catch (err) {
          this.warn("could not remove a dead push token", { ...fields, reason: r.reason, err });
        }
        this.counters.deadTokens++;
        this.metric(lane.provider, "dead_token");
        return;
      }
      case "failed":
        this.counters.failed++;
        this.metric(lane.provider, "failed");
        this.warn("push failed", { ...fields, reason: r.reason });
        return;
      case "retry": {
        if (job.attempts >= this.o.maxAttempts || this.stopping) {
          this.counters.failed++;
          this.metric(lane.provider, "gave_up");
          this.warn(`push given up after ${job.attempts} attempt(s)`, { ...fields, reason: r.reason, stopping: this.stopping });
          return;
        }
        this.counters.retried++;
        this.metric(lane.provider, "retried");
        const cap = Math.min(this.o.maxBackoffMs, this.o.baseBackoffMs * 2 ** (job.attempts - 1));
        const delay = Math.max(this.o.random() * cap, r.retryAfterMs ?? 0);
        job.notBefore = this.o.now() + delay;
        const newer = lane.jobs.get(job.thread.key);
        if (newer) {
          // A newer push of the same conversation arrived meanwhile: it goes instead, after the backoff.
          this.collapse();
          newer.attempts = Math.max(newer.attempts, job.attempts);
          newer.notBefore = Math.max(newer.notBefore, job.notBefore);
        } else if (!job.thread.closed) lane.jobs.set(job.thread.key, job);
        return;
      }
    }
  }

  private send(provider: PushProvider, job: Job): Promise<PushResult> {
    return trace.getTracer("meshchat").startActiveSpan(
      "push.send",
      { kind: SpanKind.CLIENT, attributes: { "push.provider": provider.name, "push.attempt": job.attempts, "meshchat.conversation.id": job.thread.conversationId } },
      job.ctx,
      async (span) => {
        let r: PushResult;
        try {
          r = await provider.send(job.msg);
        } catch (err) {
          // Providers report outcomes instead of throwing; a throw is a bug, worth another try.
          r = { kind: "retry", reason: `provider threw: ${String((err as Error)?.message ?? err)}` };
        }
        span.setAttribute("push.outcome", r.kind);
        if (r.kind !== "ok") span.setStatus({ code: SpanStatusCode.ERROR, message: r.reason });
        span.end();
        return r;
      },
    );
  }

  private refill(lane: Lane, now: number): void {
    lane.tokens = Math.min(this.o.perDeviceRatePerMinute, lane.tokens + Math.max(0, now - lane.refilledAt) * this.ratePerMs);
    lane.refilledAt = now;
  }

  /** An idle lane whose bucket is full again carries no state worth keeping. */
  private forgetLaneIfRested(lane: Lane, now: number): void {
    if (lane.running || lane.jobs.size > 0 || lane.inflight) return;
    this.refill(lane, now);
    if (lane.tokens >= this.o.perDeviceRatePerMinute && this.lanes.get(lane.key) === lane) this.lanes.delete(lane.key);
  }

  /** Drops threads and lanes with nothing pending and nothing left to remember. */
  private maybeSweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    this.activity.sweep(now);
    this.shown.sweep(now, this.o.countResetMs);
    for (const lane of this.lanes.values()) this.forgetLaneIfRested(lane, now);
    for (const [userId, threads] of this.threads) {
      for (const [conv, t] of threads) {
        const waiting = t.latest || t.wake || t.busy > 0 || [...t.lanes].some((l) => l.jobs.has(t.key) || l.inflight?.thread === t);
        if (!waiting && now - t.lastActivityAt > this.o.countResetMs) threads.delete(conv);
        else t.lanes = new Set([...t.lanes].filter((l) => this.lanes.get(l.key) === l));
      }
      if (threads.size === 0) this.threads.delete(userId);
    }
  }

  /** Waits `ms`, or less: `stop()` and `register(wake)` end the wait early. */
  private pause(ms: number, register?: (wake: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping || ms <= 0) {
        resolve();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        if (!this.wakers.delete(wake)) return;
        clearTimeout(timer);
        resolve();
      };
      this.wakers.add(wake);
      register?.(wake);
      if (this.o.sleep) this.o.sleep(ms).then(wake, wake);
      else {
        timer = setTimeout(wake, ms);
        timer.unref();
      }
    });
  }

  /** Gathers a read update for one device; the first of a window starts the wait that sends them. */
  private owe(userId: string, device: ShownDevice, update: ReadUpdate): void {
    if (this.stopping) return;
    let owed = this.owed.get(userId);
    if (!owed) {
      owed = { devices: new Map(), thread: this.updateThread(userId) };
      this.owed.set(userId, owed);
      const o = owed;
      this.track(this.pause(this.o.readUpdateWindowMs).then(() => this.sendReadUpdates(userId, o)));
    }
    const key = deviceKey(device);
    let entry = owed.devices.get(key);
    if (!entry) owed.devices.set(key, (entry = { device, reads: new Map() }));
    entry.reads.set(update.conversationId, update);
  }

  private sendReadUpdates(userId: string, owed: { devices: Map<string, { device: ShownDevice; reads: Map<string, ReadUpdate> }>; thread: Thread }): void {
    if (this.owed.get(userId) === owed) this.owed.delete(userId);
    for (const { device, reads } of owed.devices.values()) {
      if (!this.o.providers.has(device.provider)) continue;
      this.counters.readUpdates++;
      this.metric(device.provider, "read_update");
      const lane = this.lane(device.provider, device.token);
      this.enqueue(lane, { thread: owed.thread, deviceId: device.deviceId, msg: readUpdateMessage(device.token, reads), attempts: 0, notBefore: this.o.now(), ctx: context.active(), deferred: false, reads });
    }
  }

  /** The queue key of a user's read updates in a device's lane (no conversation is named ""). */
  private updateThread(userId: string): Thread {
    return {
      key: `${userId}\u0000\u0000read`, userId, conversationId: "", count: 0, latest: undefined, ctx: context.active(), lastEmitAt: -Infinity,
      lastActivityAt: this.o.now(), wake: undefined, withdrawnSeq: 0, readSeq: 0, headSeq: 0, closed: false, chain: Promise.resolve(), busy: 0, lanes: new Set(),
    };
  }

  private dropRead(): void {
    this.counters.readDropped++;
    this.metric("none", "read_dropped");
  }

  private track(p: Promise<unknown>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p)).catch(() => {});
  }

  private collapse(): void {
    this.counters.collapsed++;
    this.metric("none", "collapsed");
  }

  private metric(provider: ProviderName | "none", outcome: string): void {
    ChatMetrics.get().pushes.add(1, { "push.provider": provider, "push.outcome": outcome });
  }
}

/**
 * The background update of a device: `event: "read"` and `reads`, a JSON array of
 * `{conversation_id, read_seq, unread}` (FCM data values are strings). The app clears the
 * notification of a conversation with nothing unread and recounts the others.
 */
export function readUpdateMessage(token: string, reads: Map<string, ReadUpdate>): PushMessage {
  const list = [...reads.values()].map((r) => ({ conversation_id: r.conversationId, read_seq: r.readSeq, unread: r.unread }));
  return { token, title: "", body: "", collapseKey: "", data: { event: "read", reads: JSON.stringify(list) }, background: true };
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
