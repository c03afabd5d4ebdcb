import { randomUUID } from "node:crypto";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { messageAttributes } from "../telemetry/messaging.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";
import type { WebSocket } from "ws";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { AckKind, type ClientFrame, type Event, type ServerFrame } from "../../gen/chat/v1/client.js";
import { CLOSE, closeCodeOf } from "../errors/close-codes.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { textBytes } from "../grpc/message-size.js";
import type { Logger } from "../log/logger.js";
import { validateConversationId, validateDeviceId, validateMessageRef, validateSendAddress, validateText, validateUsername } from "../validation/validate.js";
import type { MeshGateway } from "./mesh-gateway.js";
import { CatchUp, type CatchUpConfig, type CatchUpIo } from "./catch-up.js";
import type { ReadLogResponse } from "../../gen/chat/internal/v1/store.js";
import { encodeServerFrame, errorFrame, type FrameMode } from "./frames.js";
import { TokenBucket } from "./rate-limit.js";
import type { SendByteLimits } from "./send-guard.js";

export interface SessionConfig extends SendByteLimits {
  /** HELLO_TIMEOUT_MS: the first frame must be Hello within this. Default 10000. */
  helloTimeoutMs: number;
  /** HEARTBEAT_INTERVAL_MS: told to clients in Welcome. Default 15000. */
  heartbeatIntervalMs: number;
  /** SEND_RATE / SEND_BURST: messages a second per session. Defaults 50 / 200. */
  sendRate: number;
  sendBurst: number;
  /** FRAME_RATE / FRAME_BURST: frames of any kind a second per session. Defaults 200 / 1000. */
  frameRate: number;
  frameBurst: number;
  /**
   * MAX_QUEUED_FRAMES / MAX_QUEUED_BYTES: frames (other than sends) a session may have
   * waiting behind a slow one; past either, a frame is refused with RATE_LIMITED at once
   * instead of being held in memory. Defaults 64 / 4 MiB.
   */
  maxQueuedFrames: number;
  maxQueuedBytes: number;
  /** MAX_BUFFERED_BYTES: a reader this far behind is disconnected and resyncs. Default 8 MiB. */
  maxBufferedBytes: number;
  /** MAX_TEXT_LENGTH: code points per message. Default 100000. */
  maxTextLength: number;
  /**
   * SYNC_PAGE_SIZE: events a catch-up asks the store for per page. Default 5000: pages of
   * ordinary messages are then cut by the store's 2 MiB (PAGE_MAX_BYTES), not by count, so a
   * 10,000-message catch-up on Cassandra is five round trips of two reads each instead of ten
   * (744 → ~490 ms, docs/performance.md "Stop 33"); small events still come 5,000 at a time.
   */
  syncPageSize: number;
  /**
   * HEAD_CHECK_INTERVAL_MS: how often the edge compares its sessions' cursors
   * with the store's log heads, in batches (0 = never). Default 60000.
   */
  headCheckIntervalMs: number;
  /**
   * PRESENCE_MAX_SUBSCRIPTIONS: users one session may subscribe to. Default 200.
   * Large audiences (big groups) are not pushed to: the client queries them on demand.
   */
  maxPresenceSubscriptions: number;
  /**
   * TYPING_THROTTLE_MS: a session's typing indicators for one conversation are forwarded at
   * most once per this; a faster one is refused with RATE_LIMITED and goes nowhere. Default 2000.
   */
  typingThrottleMs: number;
  /**
   * TYPING_EXPIRY_MS: receivers show "typing…" this long after the last indicator (so a client
   * that vanishes leaves nothing behind). Above the throttle, so steady typing shows without a
   * flicker. Default 6000.
   */
  typingExpiryMs: number;
}

export { CLOSE };

/** Conversations a session remembers typing times for before it forgets the expired ones. */
const TYPING_REMEMBERED = 256;

/** What the devices of a deleted account hear as their sockets close (SESSION_ENDED, close 4401). */
export const ACCOUNT_DELETED = "the account was deleted";

const sessionEnded = () => new ChatError(ErrorCode.ERROR_CODE_SESSION_ENDED, "the session has ended (logged out, password changed or token reused); log in again");

/** The catch-up machine's view of its session: methods, not five closures an idle session would hold. */
class SessionCatchUpIo implements CatchUpIo {
  constructor(private readonly session: Session, private readonly gateway: MeshGateway, private readonly ws: WebSocket) {}
  readLog(afterPos: number, limit: number): Promise<ReadLogResponse> {
    return this.gateway.readLog(this.session.userId, afterPos, limit);
  }
  logHead(): Promise<number> {
    return this.gateway.logHead(this.session.userId);
  }
  emit(frame: ServerFrame, onWritten?: () => void): void {
    this.session.send(frame, onWritten);
  }
  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }
  end(reason: string): void {
    this.session.close(CLOSE.retryLater, reason);
  }
}

/** One catch-up configuration for all the sessions of an edge (an object per session was ~30 bytes each). */
const catchUpConfigs = new WeakMap<SessionConfig, CatchUpConfig>();
function catchUpConfigOf(config: SessionConfig): CatchUpConfig {
  let c = catchUpConfigs.get(config);
  if (!c) catchUpConfigs.set(config, (c = { pageSize: config.syncPageSize, maxBufferedBytes: config.maxBufferedBytes }));
  return c;
}

/** What a session asks of its edge; one object serves every session. */
export interface SessionHooks {
  register(s: Session): void;
  unregister(s: Session): void;
  route(s: Session): Route;
  /** Resolves once this edge's disconnect of an earlier session of the device has reached presence. */
  disconnected(userId: string, deviceId: string): Promise<void>;
  /** Charges a send's text bytes to the user (every session of theirs); throws RATE_LIMITED past the limit. */
  admitSend(userId: string, textBytes: number): Promise<void>;
  /**
   * Deletes the session's account (held to the log-in limits: a password is being checked);
   * answers its log-in sessions, all ended now.
   */
  deleteAccount(s: Session, password: string, erase: boolean): Promise<string[]>;
  /** Log-in sessions ended: refused from now on, their sockets on this edge closed. */
  endSessions(sessionIds: string[], reason: string): void;
}

/**
 * One device's WebSocket session: Hello and its token, frame routing, rate
 * limits and each conversation's send chain. The device's cursor, and the
 * promise that it sees its sync log gapless and exactly once, are the catch-up
 * machine's (catch-up.ts), which the session feeds and sends through.
 */
export class Session {
  readonly sessionId = randomUUID();
  userId = "";
  username = "";
  /** The log-in session of the token this WebSocket said Hello with (its `sid`). */
  authSessionId = "";
  deviceId = "";
  lastFrameAt = Date.now();
  heartbeated = false;
  private authed = false;
  private closed = false;
  /** Allocated on the first send: most sessions are idle most of the time. */
  private sendChains: Map<string, Promise<unknown>> | undefined;
  /** When this session last forwarded a typing indicator, per conversation (allocated on first use). */
  private typingAt: Map<string, number> | undefined;
  /** A DeleteAccount of this session is in flight: an end that arrives meanwhile waits for its answer (endHeld). */
  private deleting = false;
  private endHeld: string | undefined;
  /** Users this session subscribed to (allocated on first use). */
  private subscribed: Set<string> | undefined;
  /** Allocated on the first send, as the send chains are. */
  private sendBucket: TokenBucket | undefined;
  private readonly frameBucket: TokenBucket;
  private helloTimer: NodeJS.Timeout | undefined;
  private readonly catchUp: CatchUp;

  constructor(
    private readonly ws: WebSocket,
    private readonly mode: FrameMode,
    private readonly gateway: MeshGateway,
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
    private readonly log: Logger,
    /** The client's address (its source address behind trusted proxies), for the log-in limits. */
    readonly address = "",
  ) {
    this.frameBucket = new TokenBucket(config.frameRate, config.frameBurst);
    this.helloTimer = setTimeout(() => this.close(CLOSE.helloTimeout, "no Hello in time"), config.helloTimeoutMs);
    this.catchUp = new CatchUp(new SessionCatchUpIo(this, gateway, ws), catchUpConfigOf(config), this, log);
  }

  /** Highest sync-log position sent to this device. */
  get cursor(): number {
    return this.catchUp.cursor;
  }

  get isAuthenticated(): boolean {
    return this.authed;
  }

  /** Sends a frame; `onWritten` runs once the socket has taken it, or at once if it is not sent. */
  send(frame: ServerFrame, onWritten?: () => void): void {
    if (this.closed) { onWritten?.(); return; }
    // A reader that does not keep up is cut off; it resyncs from its cursor.
    if (this.ws.bufferedAmount > this.config.maxBufferedBytes) {
      this.log.warn("slow consumer disconnected", { user: this.userId, device: this.deviceId, buffered: this.ws.bufferedAmount });
      this.close(CLOSE.slowConsumer, "slow consumer", true);
      onWritten?.();
      return;
    }
    this.ws.send(encodeServerFrame(frame, this.mode), onWritten && (() => onWritten()));
    ChatMetrics.get().framesOut.add(1, { kind: frame.kind?.$case ?? "none" });
  }

  /** One span per client action; a client's own traceparent makes it the parent. */
  handle(frame: ClientFrame): Promise<void> {
    const kind = frame.kind?.$case ?? "none";
    const m = ChatMetrics.get();
    m.framesIn.add(1, { kind });
    const started = performance.now();
    const done = (failed: string | undefined) => {
      m.frameDuration.record(secondsSince(started), { kind });
      if (failed) m.frameErrors.add(1, { kind, "error.code": failed });
    };
    // Heartbeats are not traced: one root trace per device every few seconds would drown the rest.
    if (kind === "heartbeat" && !frame.traceparent) return this.handleFrame(frame).then(done);
    const parent = frame.traceparent ? propagation.extract(context.active(), { traceparent: frame.traceparent }) : context.active();
    const target = frame.kind?.value as { conversationId?: string; seq?: number } | undefined;
    const attributes = { "rpc.system": "websocket", "rpc.method": kind, "enduser.id": this.userId, ...(target?.conversationId ? { "messaging.destination.name": target.conversationId } : {}), ...(target?.seq ? { "meshchat.message.seq": target.seq } : {}) };
    return trace.getTracer("meshchat").startActiveSpan(`ws ${kind}`, { kind: SpanKind.SERVER, attributes }, parent, async (span) => {
      try {
        const failed = await this.handleFrame(frame);
        done(failed);
        if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: failed });
      } finally {
        span.end();
      }
    });
  }

  private async handleFrame(frame: ClientFrame): Promise<string | undefined> {
    this.lastFrameAt = Date.now();
    const ref = frame.ref;
    try {
      const kind = frame.kind;
      if (!kind) throw new ChatError(ErrorCode.ERROR_CODE_INVALID_FRAME, "frame has no kind");
      if (!this.authed) {
        if (kind.$case !== "hello") throw new ChatError(ErrorCode.ERROR_CODE_HELLO_REQUIRED, "the first frame must be Hello");
        await this.hello(ref, kind.value);
        return undefined;
      }
      // The access token is checked at Hello only: after that the socket lives as long as its
      // log-in session does (the edge closes it when the session ends: end()), not for the
      // token's 15 minutes, so a device does not reconnect and catch up four times an hour.
      const wait = this.frameBucket.take();
      if (wait > 0) throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "too many frames", { retryAfterMs: wait });
      await this.dispatch(ref, kind);
      return undefined;
    } catch (err) {
      const e = ChatError.from(err);
      if (e.code === ErrorCode.ERROR_CODE_INTERNAL) this.log.error("frame failed", { err, user: this.userId });
      // The client is told only "try again": the cause (timeout, address) stays in the log.
      else if (e.code === ErrorCode.ERROR_CODE_UNAVAILABLE) this.log.warn("frame unavailable", { err: e, kind: frame.kind?.$case, user: this.userId });
      ChatMetrics.get().error(ErrorCode[e.code] ?? "UNKNOWN", { "rpc.system": "websocket" }, err);
      this.send(errorFrame(ref, e));
      return ErrorCode[e.code];
    }
  }

  private async hello(ref: number, hello: { token: string; deviceId: string; cursor: number; takeover: boolean }): Promise<void> {
    let claims;
    let live;
    try {
      claims = await this.gateway.tokens.verify(hello.token);
      live = await this.gateway.liveness.isLive(claims.sessionId);
    } catch (err) {
      // A bad token is final (CLOSE.unauthenticated); a store that could not be asked is not (CLOSE.retryLater).
      const e = ChatError.from(err);
      this.send(errorFrame(ref, e));
      this.close(e.retryable ? CLOSE.retryLater : CLOSE.unauthenticated, e.retryable ? "try again" : "unauthenticated");
      return;
    }
    if (!live) {
      this.send(errorFrame(ref, sessionEnded()));
      this.close(CLOSE.unauthenticated, "session ended");
      return;
    }
    validateDeviceId(hello.deviceId);
    if (this.authed || this.closed) return;
    this.userId = claims.userId;
    this.username = claims.username;
    this.authSessionId = claims.sessionId;
    this.deviceId = hello.deviceId;
    try {
      // A device that closed and reconnected at once: its old session must not count as in use.
      await this.hooks.disconnected(this.userId, this.deviceId);
      const { replaced } = await this.gateway.presenceConnect(this.hooks.route(this), hello.takeover);
      if (replaced) void this.gateway.kick(replaced);
      if (this.closed) {
        // The socket closed while presence registered the device: onClosed saw no session to
        // remove, so disconnect it here or presence (and this edge's heartbeats) keep it for ever.
        this.hooks.unregister(this);
        return;
      }
    } catch (err) {
      const e = ChatError.from(err);
      this.send(errorFrame(ref, e));
      this.close(closeCodeOf(e.code), e.message);
      return;
    }
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.authed = true;
    // Registered before catch-up starts, so live events arriving meanwhile are buffered, not lost.
    this.hooks.register(this);
    this.gateway.userOnline(this.userId);
    this.send({
      ref,
      kind: {
        $case: "welcome",
        value: {
          userId: this.userId,
          username: this.username,
          deviceId: this.deviceId,
          sessionId: this.sessionId,
          heartbeatIntervalMs: this.config.heartbeatIntervalMs,
          maxTextLength: this.config.maxTextLength,
          serverTimeMs: Date.now(),
        },
      },
    });
    this.catchUp.start(hello.cursor);
  }

  private async dispatch(ref: number, kind: NonNullable<ClientFrame["kind"]>): Promise<void> {
    const actor = { userId: this.userId, deviceId: this.deviceId };
    const b = this.gateway;
    switch (kind.$case) {
      case "hello":
        throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_AUTHENTICATED, "this session already said Hello");
      case "heartbeat":
        this.heartbeated = true;
        if (ref) this.send({ ref, kind: { $case: "heartbeatAck", value: { serverTimeMs: Date.now(), cursor: this.cursor } } });
        return;
      case "send": {
        const s = kind.value;
        // The limits before the text's full check: a send they refuse costs no walk of its text
        // (a flood of the largest legal texts spent the edge's loop on checking texts it then
        // refused). A text found bad after them is refused too, its bytes counted like any other's.
        validateSendAddress(s);
        // A bucket made now is full, as one made at the connect would be by now (it refills to its burst).
        const wait = (this.sendBucket ??= new TokenBucket(this.config.sendRate, this.config.sendBurst)).take();
        if (wait > 0) throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too fast", { retryAfterMs: wait });
        // Charged on arrival, in frame order: a refused send is answered at once and its text is not
        // held in the edge behind this session's earlier sends (only admitted bytes wait there).
        const admitted = this.hooks.admitSend(this.userId, textBytes(s.text)).then(() => {
          validateText(s.text, this.config.maxTextLength);
          return s;
        });
        // The message clears "typing…" at the receivers: the next keystroke may say so at once.
        this.typingAt?.delete(s.conversationId);
        // One send per conversation at a time from this session: later sends get higher numbers (P2).
        const chains = (this.sendChains ??= new Map());
        const conversationId = s.conversationId;
        const prev: Promise<unknown> = chains.get(conversationId) ?? Promise.resolve();
        const next = prev.catch(() => {}).then(() => admitted).then((send) => b.send(actor, send));
        chains.set(conversationId, next);
        // The slot is freed when this send settles, not when its frame is answered (a refusal is answered first).
        void next.catch(() => {}).then(() => { if (chains.get(conversationId) === next) chains.delete(conversationId); });
        await admitted;
        const sent = await next;
        // The frame's span names the message it made (known once chat has sequenced it).
        trace.getActiveSpan()?.setAttributes(messageAttributes(sent));
        this.send({ ref, kind: { $case: "sent", value: sent } });
        return;
      }
      case "ack": {
        validateConversationId(kind.value.conversationId);
        if (kind.value.kind === AckKind.ACK_KIND_UNSPECIFIED) throw ChatError.invalid("ack kind is required");
        await b.ack(actor, kind.value);
        if (ref) this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      }
      case "sync":
        this.catchUp.resync(kind.value.afterPos);
        return;
      case "typing": {
        validateConversationId(kind.value.conversationId);
        this.throttleTyping(kind.value.conversationId);
        await b.typing(actor, kind.value.conversationId, this.config.typingExpiryMs);
        if (ref) this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      }
      case "edit":
        validateMessageRef(kind.value);
        validateText(kind.value.text, this.config.maxTextLength);
        // An edit's text counts against the user's byte rate like a send's.
        await this.hooks.admitSend(this.userId, textBytes(kind.value.text));
        await b.edit(actor, kind.value);
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "delete":
        validateMessageRef(kind.value);
        await b.delete(actor, kind.value);
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "history": {
        validateConversationId(kind.value.conversationId);
        this.send({ ref, kind: { $case: "history", value: await b.history(this.userId, kind.value) } });
        return;
      }
      case "openDirect":
        this.send({ ref, kind: { $case: "conversation", value: await b.openDirect(actor, kind.value.username) } });
        return;
      case "createGroup":
        this.send({ ref, kind: { $case: "conversation", value: await b.createGroup(actor, kind.value.title, kind.value.usernames) } });
        return;
      case "addMember":
        validateConversationId(kind.value.conversationId);
        this.send({ ref, kind: { $case: "conversation", value: await b.changeMembership(actor, kind.value.conversationId, kind.value.username, true) } });
        return;
      case "removeMember":
        validateConversationId(kind.value.conversationId);
        this.send({ ref, kind: { $case: "conversation", value: await b.changeMembership(actor, kind.value.conversationId, kind.value.username, false) } });
        return;
      case "leave":
        validateConversationId(kind.value.conversationId);
        this.send({ ref, kind: { $case: "conversation", value: await b.changeMembership(actor, kind.value.conversationId, this.username, false) } });
        return;
      case "setMuted":
        validateConversationId(kind.value.conversationId);
        await b.setMuted(actor, kind.value.conversationId, kind.value.muted);
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "listConversations":
        this.send({ ref, kind: { $case: "conversations", value: { conversations: await b.listConversations(this.userId) } } });
        return;
      case "registerPushToken":
        await b.registerPushToken(actor, kind.value.provider, kind.value.token);
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "unregisterPushToken":
        await b.unregisterPushToken(actor);
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "presenceSubscribe": {
        const ids = new Set([...(this.subscribed ?? []), ...kind.value.userIds]);
        if (ids.size > this.config.maxPresenceSubscriptions) {
          throw ChatError.invalid(`a session subscribes to at most ${this.config.maxPresenceSubscriptions} users; query the others with PresenceQuery`);
        }
        const users = await b.presenceSubscribe(this.hooks.route(this), kind.value.userIds);
        this.subscribed = ids;
        this.send({ ref, kind: { $case: "presenceList", value: { users } } });
        return;
      }
      case "presenceQuery":
        this.send({ ref, kind: { $case: "presenceList", value: { users: await b.presenceQuery({ userId: this.userId, deviceId: this.deviceId }, kind.value.userIds) } } });
        return;
      case "getPrivacy":
        this.send({ ref, kind: { $case: "privacy", value: await b.getPrivacy(actor) } });
        return;
      case "setPrivacy":
        this.send({ ref, kind: { $case: "privacy", value: await b.setPrivacy(actor, kind.value) } });
        return;
      case "block":
      case "unblock":
        validateUsername(kind.value.username);
        await b.setBlocked(actor, kind.value.username, kind.$case === "block");
        this.send({ ref, kind: { $case: "ok", value: {} } });
        return;
      case "listBlocked":
        this.send({ ref, kind: { $case: "blocked", value: { users: await b.listBlocked(actor) } } });
        return;
      case "deleteAccount": {
        if (!kind.value.password) throw ChatError.invalid("the password is required");
        // Chat closes the account's sockets on every edge before it answers, this one's included:
        // this session holds its end until the device has its answer.
        this.deleting = true;
        try {
          const ended = await this.hooks.deleteAccount(this, kind.value.password, kind.value.erase);
          this.send({ ref, kind: { $case: "ok", value: {} } });
          this.hooks.endSessions(ended, ACCOUNT_DELETED);
        } finally {
          this.deleting = false;
          if (this.endHeld !== undefined) this.end(this.endHeld);
        }
        return;
      }
    }
  }

  /**
   * At most one typing indicator per conversation per TYPING_THROTTLE_MS leaves this
   * session; a faster one is refused before it reaches chat, so a flood is never fanned out.
   */
  private throttleTyping(conversationId: string): void {
    const now = Date.now();
    const typing = (this.typingAt ??= new Map());
    const last = typing.get(conversationId);
    if (last !== undefined && now - last < this.config.typingThrottleMs) {
      throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "typing indicators are throttled", { retryAfterMs: this.config.typingThrottleMs - (now - last) });
    }
    if (typing.size >= TYPING_REMEMBERED) for (const [c, at] of typing) if (now - at >= this.config.typingThrottleMs) typing.delete(c);
    // Still full of fresh entries (a session typing in hundreds of conversations at once): the oldest goes.
    if (typing.size >= TYPING_REMEMBERED) typing.delete(typing.keys().next().value!);
    typing.set(conversationId, now);
  }

  /** The store says the user's log reaches `head` (the edge's periodic head check). */
  checkHead(head: number): void {
    this.catchUp.checkHead(head);
  }

  /** A live event for this device's user, with the user's log position. */
  deliver(event: Event): void {
    this.catchUp.deliver(event);
  }

  /** Its log-in session ended (logout, password change, a reused refresh token, account deleted): tell the device, then close. */
  end(reason?: string): void {
    if (this.deleting) {
      this.endHeld = reason ?? "";
      return;
    }
    this.send(errorFrame(0, reason ? new ChatError(ErrorCode.ERROR_CODE_SESSION_ENDED, reason) : sessionEnded()));
    this.close(CLOSE.unauthenticated, "session ended");
  }

  close(code: number, reason: string, terminate = false): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.helloTimer);
    try {
      if (terminate) this.ws.terminate();
      else this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.onClosed();
  }

  /**
   * True once the client has begun the closing handshake (ws sets CLOSING when its
   * close frame arrives), before the socket's "close" event ends the session.
   */
  get closing(): boolean {
    return this.ws.readyState !== this.ws.OPEN;
  }

  private hasEnded = false;
  /** Who waits for the end (allocated when someone does: rarely, a device's next session). */
  private endWaiters: Array<() => void> | undefined;
  /** Resolves once the session has ended and its disconnect has been handed on. */
  get ended(): Promise<void> {
    if (this.hasEnded) return Promise.resolve();
    return new Promise((resolve) => (this.endWaiters ??= []).push(resolve));
  }

  /** Called once the socket is gone, whoever closed it. */
  onClosed(): void {
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.catchUp.stop();
    if (this.authed) {
      this.authed = false;
      this.hooks.unregister(this);
    }
    this.hasEnded = true;
    const waiters = this.endWaiters;
    this.endWaiters = undefined;
    for (const w of waiters ?? []) w();
  }
}
