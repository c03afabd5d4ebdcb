import {
  AckKind,
  type BlockedUser,
  ClientFrame,
  type Conversation,
  ErrorCode,
  type Event,
  type HistoryPage,
  HistoryDirection,
  type Member,
  type Message,
  type MembershipChange,
  type MessageDeleted,
  type MessageEdited,
  type PresenceUpdate,
  GroupAdds,
  PresenceVisibility,
  type PrivacySettings,
  PushProvider,
  type ReadMarker,
  type Receipt,
  ServerFrame,
  type Send,
  type Sent,
  type TypingUpdate,
  type Welcome,
} from "../../gen/chat/v1/client.js";
import { CLOSE, closeIsFinal } from "../errors/close-codes.js";
import { sleep } from "../run/sleep.js";

export { AckKind, ErrorCode, GroupAdds, HistoryDirection, PresenceVisibility, PushProvider };
export type { BlockedUser, Conversation, Event, HistoryPage, Member, Message, MembershipChange, MessageDeleted, MessageEdited, PresenceUpdate, PrivacySettings, ReadMarker, Receipt, Sent, TypingUpdate, Welcome };

/** The subset of the WebSocket API we use: the browser's and the `ws` package's both fit. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

/** An Error frame from the server (or a local failure), with its typed code. */
export class ClientError extends Error {
  override readonly name = "ClientError";
  constructor(readonly code: ErrorCode, message: string, readonly retryable = false, readonly retryAfterMs = 0) {
    super(message);
  }
  get codeName(): string {
    return ErrorCode[this.code] ?? String(this.code);
  }
}

/** Where a client gets access tokens that stay fresh (AuthSession in auth.ts). */
export interface TokenSource {
  /** A token valid for a while yet; `force` gets a new one (the server said the last one expired). */
  accessToken(force?: boolean): Promise<string>;
}

export interface ClientOptions {
  /** ws://host:port/v1/ws */
  url: string;
  /** Other edges to try, in turn, when a connection attempt fails (an edge died). */
  fallbackUrls?: string[];
  /** A fixed access token; with `auth` instead, each connection attempt asks it for a fresh one. */
  token?: string;
  auth?: TokenSource;
  deviceId: string;
  /** Highest sync-log position this device applied before (persist it across runs). */
  cursor?: number;
  /** "proto" (binary, default) or "json". */
  mode?: "proto" | "json";
  socket: SocketFactory;
  /** Reconnect after a drop, resuming from the cursor. Default true. */
  reconnect?: boolean;
  /** Acknowledge "delivered" automatically for received messages. Default true. */
  autoAckDelivered?: boolean;
  requestTimeoutMs?: number;
  /**
   * A connection attempt not open by then is given up and the next URL tried. Default 10000.
   * An edge host cut off the network answers nothing, not even a refusal: without a limit the
   * attempt waits for the OS to give up on the TCP handshake (over two minutes on Linux).
   */
  connectTimeoutMs?: number;
  /** Typing indicators of one conversation go out at most this often (the edge's TYPING_THROTTLE_MS). Default 2000. */
  typingIntervalMs?: number;
}

type Listeners = {
  message: (m: Message, ev: Event) => void;
  membership: (m: MembershipChange, ev: Event) => void;
  read: (r: ReadMarker, ev: Event) => void;
  /** A message's text was replaced (live, or in a catch-up with the text as it is now). */
  edited: (e: MessageEdited, ev: Event) => void;
  /** A message was deleted for everyone (show a tombstone in its place) or, on this user's devices only, for them (hide it). */
  deleted: (d: MessageDeleted, ev: Event) => void;
  receipt: (r: Receipt) => void;
  presence: (p: PresenceUpdate) => void;
  /**
   * Another member is typing: show it for `expiresInMs`. `expiresInMs` 0 means they stopped
   * (their message arrived). TypingIndicators (typing.ts) keeps this state for a UI.
   */
  typing: (t: TypingUpdate) => void;
  synced: (pos: number) => void;
  cursor: (pos: number) => void;
  state: (s: "connecting" | "open" | "closed") => void;
  error: (e: ClientError) => void;
  /**
   * Drop what was derived from the log and rebuild it: `cursor-ahead`, the edge found this
   * device's cursor beyond its log and replays the log from 0; `trimmed`, the cursor was older
   * than the log keeps (docs/sync-log-trim.md), so events were missed for good: reload the
   * conversations (listConversations) and their history, the log goes on from `cursor`.
   */
  reset: (reason: "cursor-ahead" | "trimmed") => void;
};

interface PendingRequest {
  resolve: (f: ServerFrame) => void;
  reject: (e: ClientError) => void;
  timer: ReturnType<typeof setTimeout>;
  frame: ClientFrame;
}

const OPEN = 1;
const CLOSED = 3;

/**
 * A chat client over one WebSocket: Hello, requests matched by ref, the device's
 * cursor kept exactly (events applied once, in order; a gap triggers a resync),
 * automatic reconnect with takeover, and sends that survive a reconnect
 * (same client_msg_id, so the server never stores one twice).
 */
export class ChatClient {
  cursor: number;
  welcome: Welcome | undefined;
  private ws: SocketLike | undefined;
  /** close() callers waiting for the socket's close event. */
  private closeWaiters: Array<() => void> = [];
  private nextRef = 1;
  private readonly pending = new Map<number, PendingRequest>();
  private readonly listeners: { [K in keyof Listeners]: Set<Listeners[K]> } = {
    message: new Set(), membership: new Set(), read: new Set(), edited: new Set(), deleted: new Set(), receipt: new Set(), presence: new Set(), typing: new Set(), synced: new Set(), cursor: new Set(), state: new Set(), error: new Set(), reset: new Set(),
  };
  private closedByUser = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly deliveredToAck = new Map<string, number>();
  private reconnectDelay = 250;
  /** Which of url / fallbackUrls the next connection attempt uses. */
  private urlIndex = 0;
  private connected: Promise<Welcome> | undefined;
  private syncWaiters: Array<() => void> = [];
  private lastServerFrameAt = 0;
  private heartbeatIntervalMs = 15_000;
  private isSynced = false;
  /** The last Hello was refused with TOKEN_EXPIRED: the next attempt forces a refresh. */
  private tokenExpired = false;
  /** When this client last said it is typing, per conversation. */
  private readonly typingSentAt = new Map<string, number>();
  /** Members seen typing, per conversation: their message clears it. */
  private readonly typingSeen = new Set<string>();

  constructor(private readonly opts: ClientOptions) {
    this.cursor = opts.cursor ?? 0;
  }

  on<K extends keyof Listeners>(event: K, fn: Listeners[K]): () => void {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  /** Opens the session; resolves on Welcome (catch-up then streams in as events). */
  connect(): Promise<Welcome> {
    this.closedByUser = false;
    this.connected = this.open(false);
    return this.connected;
  }

  /** Resolves once catch-up has finished (the server sent Synced). */
  waitSynced(): Promise<void> {
    if (this.isSynced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  /**
   * Closes for good. Resolves once the server has answered the closing handshake, so
   * the same device id can connect again at once without being refused as in use.
   */
  close(): Promise<void> {
    this.closedByUser = true;
    this.stopTimers();
    const ws = this.ws;
    const closed = !ws || ws.readyState === CLOSED ? Promise.resolve() : new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    ws?.close(1000, "bye");
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, "client closed", true)); }
    this.pending.clear();
    return closed;
  }

  /**
   * Sends a message. Without `clientMsgId` the client makes one up, and only then can it
   * promise the store that no earlier copy exists (`firstSend`, cleared once the frame has gone
   * out, so a resend is looked up). An id the caller passes may have been sent before (an
   * outbox kept across restarts): it is always looked up.
   */
  async send(conversationId: string, text: string, clientMsgId?: string, opts: { replyToSeq?: number } = {}): Promise<Sent> {
    this.typingSentAt.delete(conversationId);
    const send: Send = { conversationId, clientMsgId: clientMsgId ?? randomId(), text, replyToSeq: opts.replyToSeq || undefined, firstSend: clientMsgId === undefined };
    const f = await this.requestRetrying({ $case: "send", value: send });
    return expect(f, "sent");
  }

  /**
   * Tells the other members this user is typing. Call it on every keystroke: it goes
   * out at most once per `typingIntervalMs` per conversation, only while connected,
   * and a send clears it. A non-member is refused with PERMISSION_DENIED.
   */
  async typing(conversationId: string): Promise<void> {
    const now = Date.now();
    const last = this.typingSentAt.get(conversationId);
    if (last !== undefined && now - last < (this.opts.typingIntervalMs ?? 2_000)) return;
    if (this.ws?.readyState !== OPEN || !this.welcome) return;
    this.typingSentAt.set(conversationId, now);
    try {
      await this.request({ $case: "typing", value: { conversationId } });
    } catch (err) {
      // Throttled by the edge (its interval is longer than ours): typing is best effort.
      if ((err as ClientError).code !== ErrorCode.ERROR_CODE_RATE_LIMITED) throw err;
    }
  }

  /** Sends a reply to an earlier message of the conversation (NOT_FOUND if there is no such seq). */
  reply(conversationId: string, replyToSeq: number, text: string, clientMsgId?: string): Promise<Sent> {
    return this.send(conversationId, text, clientMsgId, { replyToSeq });
  }

  /** Replaces the text of one's own message (typed errors: PERMISSION_DENIED, NOT_FOUND, MESSAGE_DELETED, WINDOW_CLOSED). */
  async edit(conversationId: string, seq: number, text: string): Promise<void> {
    await this.requestRetrying({ $case: "edit", value: { conversationId, seq, text } });
  }

  /** Deletes a message for this user's devices, or for everyone. */
  async deleteMessage(conversationId: string, seq: number, forEveryone: boolean): Promise<void> {
    await this.requestRetrying({ $case: "delete", value: { conversationId, seq, forEveryone } });
  }

  async markRead(conversationId: string, seq: number): Promise<void> {
    await this.requestRetrying({ $case: "ack", value: { conversationId, seq, kind: AckKind.ACK_KIND_READ } });
  }

  async ackDelivered(conversationId: string, seq: number): Promise<void> {
    await this.requestRetrying({ $case: "ack", value: { conversationId, seq, kind: AckKind.ACK_KIND_DELIVERED } });
  }

  async history(conversationId: string, opts: { direction?: HistoryDirection; fromSeq?: number; limit?: number } = {}): Promise<HistoryPage> {
    const f = await this.requestRetrying({ $case: "history", value: { conversationId, direction: opts.direction ?? HistoryDirection.HISTORY_DIRECTION_BACKWARD, fromSeq: opts.fromSeq ?? 0, limit: opts.limit ?? 50 } });
    return expect(f, "history");
  }

  async openDirect(username: string): Promise<Conversation> {
    return expect(await this.requestRetrying({ $case: "openDirect", value: { username } }), "conversation");
  }
  async createGroup(title: string, usernames: string[]): Promise<Conversation> {
    return expect(await this.request({ $case: "createGroup", value: { title, usernames } }), "conversation");
  }
  async addMember(conversationId: string, username: string): Promise<Conversation> {
    return expect(await this.requestRetrying({ $case: "addMember", value: { conversationId, username } }), "conversation");
  }
  async removeMember(conversationId: string, username: string): Promise<Conversation> {
    return expect(await this.requestRetrying({ $case: "removeMember", value: { conversationId, username } }), "conversation");
  }
  async leave(conversationId: string): Promise<Conversation> {
    return expect(await this.requestRetrying({ $case: "leave", value: { conversationId } }), "conversation");
  }
  async setMuted(conversationId: string, muted: boolean): Promise<void> {
    await this.requestRetrying({ $case: "setMuted", value: { conversationId, muted } });
  }
  async listConversations(): Promise<Conversation[]> {
    return expect(await this.requestRetrying({ $case: "listConversations", value: {} }), "conversations").conversations;
  }
  async registerPushToken(provider: PushProvider, token: string): Promise<void> {
    await this.requestRetrying({ $case: "registerPushToken", value: { provider, token } });
  }
  async unregisterPushToken(): Promise<void> {
    await this.requestRetrying({ $case: "unregisterPushToken", value: {} });
  }
  async presenceSubscribe(userIds: string[]): Promise<PresenceUpdate[]> {
    return expect(await this.requestRetrying({ $case: "presenceSubscribe", value: { userIds } }), "presenceList").users;
  }
  async presenceQuery(userIds: string[]): Promise<PresenceUpdate[]> {
    return expect(await this.requestRetrying({ $case: "presenceQuery", value: { userIds } }), "presenceList").users;
  }
  async getPrivacy(): Promise<PrivacySettings> {
    return expect(await this.requestRetrying({ $case: "getPrivacy", value: {} }), "privacy");
  }
  /** Changes the settings given (the others keep their value); answers the settings now. */
  async setPrivacy(change: Partial<PrivacySettings>): Promise<PrivacySettings> {
    return expect(await this.requestRetrying({ $case: "setPrivacy", value: { presence: 0, groupAdds: 0, ...change } }), "privacy");
  }
  /** Blocks a user by name (docs/features.md, "Blocking a user"); blocking again changes nothing. */
  async block(username: string): Promise<void> {
    await this.requestRetrying({ $case: "block", value: { username } });
  }
  async unblock(username: string): Promise<void> {
    await this.requestRetrying({ $case: "unblock", value: { username } });
  }
  /** The users this account blocked, most recent first. */
  async listBlocked(): Promise<BlockedUser[]> {
    return expect(await this.requestRetrying({ $case: "listBlocked", value: {} }), "blocked").users;
  }
  /**
   * Deletes the account (the password confirms it); with `erase` every message of it is deleted
   * for everyone. Once answered, every session of the account ends: this client's socket closes
   * with SESSION_ENDED (4401) and does not reconnect. Not retried: after a lost answer the
   * account may be gone, and a log-in tells.
   */
  async deleteAccount(password: string, opts: { erase?: boolean } = {}): Promise<void> {
    await this.request({ $case: "deleteAccount", value: { password, erase: opts.erase ?? false } });
  }
  /** Ask the server to resend everything after `afterPos` (normally automatic). */
  resync(afterPos = this.cursor): void {
    this.cursor = afterPos;
    this.isSynced = false;
    this.sendFrame({ ref: 0, traceparent: "", kind: { $case: "sync", value: { afterPos } } });
  }

  /** Sends any frame and waits for the reply with the same ref. */
  request(kind: NonNullable<ClientFrame["kind"]>, traceparent = ""): Promise<ServerFrame> {
    const ref = this.nextRef++;
    const frame: ClientFrame = { ref, traceparent, kind };
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, "request timed out", true));
      }, this.opts.requestTimeoutMs ?? 20_000);
      this.pending.set(ref, { resolve, reject, timer, frame });
      if (this.ws?.readyState === OPEN && this.welcome) this.sendFrame(frame);
      // Otherwise it is sent when the session is (re)established.
    });
  }

  /** Sends raw bytes or text (tests use it for malformed input). */
  sendRaw(data: string | Uint8Array): void {
    this.ws?.send(data);
  }

  /** Retries while the error is retryable; only for requests that are safe to repeat. */
  private async requestRetrying(kind: NonNullable<ClientFrame["kind"]>): Promise<ServerFrame> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request(kind);
      } catch (err) {
        const e = err as ClientError;
        if (!e.retryable || attempt >= 8 || this.closedByUser) throw e;
        await sleep(Math.min(2_000, e.retryAfterMs || 100 * 2 ** attempt));
      }
    }
  }

  private open(takeover: boolean): Promise<Welcome> {
    const auth = this.opts.auth;
    if (!auth) return this.openWith(this.opts.token ?? "", takeover);
    const force = this.tokenExpired;
    this.tokenExpired = false;
    return auth.accessToken(force).then((token) => this.openWith(token, takeover), (err: unknown) => {
      const e = err instanceof ClientError ? err : new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, String(err), true);
      this.emit("error", e);
      // The server could not be reached: try again later. A refused refresh (the session ended) is final.
      if (e.retryable && !this.closedByUser && this.opts.reconnect !== false) this.scheduleReconnect();
      throw e;
    });
  }

  private scheduleReconnect(): void {
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(5_000, this.reconnectDelay * 2);
    setTimeout(() => {
      if (this.closedByUser) return;
      this.open(true).catch(() => {});
    }, delay * (0.5 + Math.random()));
  }

  private openWith(token: string, takeover: boolean): Promise<Welcome> {
    this.emit("state", "connecting");
    const protocol = this.opts.mode === "json" ? "meshchat.v1.json" : "meshchat.v1.proto";
    const urls = [this.opts.url, ...(this.opts.fallbackUrls ?? [])];
    const ws = this.opts.socket(urls[this.urlIndex % urls.length]!, [protocol]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.isSynced = false;
    return new Promise<Welcome>((resolve, reject) => {
      let welcomed = false;
      let helloRef = 0;
      // Closing a socket that is still connecting fails it: onclose below moves on to the next URL.
      const connectTimer = setTimeout(() => ws.close(), this.opts.connectTimeoutMs ?? 10_000);
      ws.onopen = () => {
        clearTimeout(connectTimer);
        const ref = (helloRef = this.nextRef++);
        const hello: ClientFrame = { ref, traceparent: "", kind: { $case: "hello", value: { token, deviceId: this.opts.deviceId, cursor: this.cursor, takeover } } };
        const timer = setTimeout(() => reject(new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, "no Welcome", true)), this.opts.requestTimeoutMs ?? 20_000);
        this.pending.set(ref, {
          frame: hello,
          timer,
          resolve: (f) => {
            const w = expect(f, "welcome");
            this.welcome = w;
            welcomed = true;
            this.reconnectDelay = 250;
            this.startTimers(w.heartbeatIntervalMs);
            this.emit("state", "open");
            // Requests made while disconnected go out now; sends keep their client_msg_id.
            for (const [r, p] of this.pending) if (r !== ref) this.sendFrame(p.frame);
            resolve(w);
          },
          reject: (e) => {
            // Expired on the way (or by the server's clock): the next attempt refreshes first.
            if (e.code === ErrorCode.ERROR_CODE_TOKEN_EXPIRED && this.opts.auth) this.tokenExpired = true;
            // A reconnect has no caller to reject to: listeners hear why (SESSION_ENDED: log in again).
            if (takeover) this.emit("error", e);
            reject(e);
          },
        });
        this.sendFrame(hello);
      };
      ws.onmessage = (ev) => this.onFrame(ev.data);
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        clearTimeout(connectTimer);
        for (const done of this.closeWaiters.splice(0)) done();
        const hello = this.pending.get(helloRef);
        if (hello) { clearTimeout(hello.timer); this.pending.delete(helloRef); }
        this.stopTimers();
        this.welcome = undefined;
        this.emit("state", "closed");
        if (!welcomed) {
          // This edge did not take us: the next attempt goes to the next one.
          this.urlIndex++;
          reject(new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, `connection closed (${ev.code} ${ev.reason})`, true));
        }
        // The token or its session was refused, or the device is in use: only an expired token with a way to refresh is worth another try.
        const fatal = closeIsFinal(ev.code) && !(ev.code === CLOSE.unauthenticated && this.tokenExpired);
        if (this.closedByUser || this.opts.reconnect === false || fatal) {
          for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new ClientError(ErrorCode.ERROR_CODE_UNAVAILABLE, `connection closed (${ev.code} ${ev.reason})`, true)); }
          this.pending.clear();
          return;
        }
        this.scheduleReconnect();
      };
    });
  }

  private onFrame(data: unknown): void {
    this.lastServerFrameAt = Date.now();
    let frame: ServerFrame;
    try {
      frame = typeof data === "string" ? ServerFrame.fromJSON(JSON.parse(data)) : ServerFrame.decode(toBytes(data));
    } catch {
      return;
    }
    const kind = frame.kind;
    if (!kind) return;
    if (frame.ref) {
      const p = this.pending.get(frame.ref);
      if (p) {
        this.pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (kind.$case === "error") p.reject(new ClientError(kind.value.code, kind.value.message, kind.value.retryable, kind.value.retryAfterMs));
        else p.resolve(frame);
        return;
      }
    }
    switch (kind.$case) {
      case "event": return this.applyEvent(kind.value);
      case "synced":
        this.isSynced = true;
        for (const w of this.syncWaiters.splice(0)) w();
        return this.emit("synced", kind.value.pos);
      case "logTrimmed":
        // Sent before any event after the trim: the cursor jumps there instead of asking for a gap no one has.
        if (kind.value.pos > this.cursor) {
          this.cursor = kind.value.pos;
          this.emit("cursor", this.cursor);
        }
        return this.emit("reset", "trimmed");
      case "receipt": return this.emit("receipt", kind.value);
      case "presence": return this.emit("presence", kind.value);
      case "typing":
        this.typingSeen.add(`${kind.value.conversationId}\u0000${kind.value.userId}`);
        return this.emit("typing", kind.value);
      case "error":
        if (kind.value.code === ErrorCode.ERROR_CODE_CURSOR_AHEAD) {
          // The edge now replays from 0: take every position again instead of skipping them as seen.
          this.cursor = 0;
          this.emit("cursor", 0);
          this.emit("reset", "cursor-ahead");
        }
        return this.emit("error", new ClientError(kind.value.code, kind.value.message, kind.value.retryable, kind.value.retryAfterMs));
      default: return;
    }
  }

  /** Applies each sync-log position exactly once and in order. */
  private applyEvent(ev: Event): void {
    if (ev.pos <= this.cursor) return;
    if (ev.pos !== this.cursor + 1) {
      this.resync(this.cursor);
      return;
    }
    this.cursor = ev.pos;
    const k = ev.kind;
    if (k?.$case === "message") {
      // The message ends its sender's "typing…" in that conversation.
      const typingKey = `${k.value.conversationId}\u0000${k.value.senderId}`;
      if (this.typingSeen.delete(typingKey)) this.emit("typing", { conversationId: k.value.conversationId, userId: k.value.senderId, username: "", expiresInMs: 0 });
      this.emit("message", k.value, ev);
      if (this.opts.autoAckDelivered !== false && this.welcome && k.value.senderId !== this.welcome.userId) this.queueDeliveredAck(k.value);
    } else if (k?.$case === "membership") this.emit("membership", k.value, ev);
    else if (k?.$case === "read") this.emit("read", k.value, ev);
    else if (k?.$case === "edited") this.emit("edited", k.value, ev);
    else if (k?.$case === "deleted") this.emit("deleted", k.value, ev);
    this.emit("cursor", this.cursor);
  }

  private queueDeliveredAck(m: Message): void {
    this.deliveredToAck.set(m.conversationId, Math.max(this.deliveredToAck.get(m.conversationId) ?? 0, m.seq));
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      for (const [conversationId, seq] of this.deliveredToAck) this.sendFrame({ ref: 0, traceparent: "", kind: { $case: "ack", value: { conversationId, seq, kind: AckKind.ACK_KIND_DELIVERED } } });
      this.deliveredToAck.clear();
    }, 100);
  }

  private sendFrame(frame: ClientFrame): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    if (this.opts.mode === "json") ws.send(JSON.stringify(ClientFrame.toJSON(frame)));
    else ws.send(ClientFrame.encode(frame).finish());
    // Once out, it may be stored: every later transmission (a reconnect, a retry) is a resend.
    if (frame.kind?.$case === "send") frame.kind.value.firstSend = false;
  }

  private startTimers(intervalMs: number): void {
    this.stopTimers();
    this.heartbeatIntervalMs = Math.max(1_000, intervalMs);
    this.lastServerFrameAt = Date.now();
    this.heartbeat = setInterval(() => this.heartbeatNow(), this.heartbeatIntervalMs);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  /**
   * Sends a heartbeat now. A connection that has been silent for two intervals is
   * dead (half-open TCP): it is closed, and the client reconnects and resumes from
   * its cursor. The reply carries the server's cursor for this session: if it is
   * ahead of ours, frames were lost on the way and we resync.
   */
  heartbeatNow(): void {
    if (!this.ws || !this.welcome) return;
    if (Date.now() - this.lastServerFrameAt > 2 * this.heartbeatIntervalMs + 2_000) {
      // A dead link may hold the closing handshake for a long time (a browser offline waits
      // for its network to return): the session ends now, and the old socket is cut loose.
      const ws = this.ws;
      const ended = ws.onclose;
      // The edge that went silent is tried last: its host may be cut off, and a try costs a connect timeout.
      this.urlIndex++;
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(4000, "no answer from the server");
      ended?.({ code: 4000, reason: "no answer from the server" });
      return;
    }
    this.request({ $case: "heartbeat", value: {} }).then(
      (f) => {
        if (f.kind?.$case === "heartbeatAck" && f.kind.value.cursor > this.cursor) this.resync(this.cursor);
      },
      () => {},
    );
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private emit<K extends keyof Listeners>(event: K, ...args: Parameters<Listeners[K]>): void {
    for (const fn of this.listeners[event]) (fn as (...a: Parameters<Listeners[K]>) => void)(...args);
  }
}

type FrameCase = NonNullable<ServerFrame["kind"]>["$case"];
type FrameValue<C extends FrameCase> = Extract<NonNullable<ServerFrame["kind"]>, { $case: C }>["value"];

function expect<C extends FrameCase>(f: ServerFrame, c: C): FrameValue<C> {
  if (f.kind?.$case !== c) throw new ClientError(ErrorCode.ERROR_CODE_INTERNAL, `expected ${c}, got ${f.kind?.$case}`);
  return f.kind.value as FrameValue<C>;
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return concat(data as Uint8Array[]);
  throw new Error("unexpected frame data");
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function randomId(): string {
  const c = globalThis.crypto;
  return c.randomUUID();
}

/** A session's tokens, as /v1/signup, /v1/login and /v1/refresh answer them. */
export interface SessionTokens {
  userId: string;
  username: string;
  /** The access token (Hello, Authorization: Bearer), valid until expiresAtMs. */
  token: string;
  expiresAtMs: number;
  /** Exchanged once at /v1/refresh for new tokens; a second use ends the session. */
  refreshToken: string;
  refreshExpiresAtMs: number;
  sessionId: string;
}

/** POSTs JSON to the edge's HTTP API; an error reply becomes a ClientError with its typed code. */
export async function postJson(baseUrl: string, path: string, body: unknown, accessToken?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const res = await fetch(`${baseUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const reply = (await res.json()) as Record<string, unknown>;
  if (!res.ok) {
    const code = ErrorCode[String(reply.code) as keyof typeof ErrorCode] ?? ErrorCode.ERROR_CODE_INTERNAL;
    throw new ClientError(code as ErrorCode, String(reply.message ?? res.statusText), Boolean(reply.retryable), Number(reply.retry_after_ms ?? 0));
  }
  return reply;
}

export function sessionTokensOf(body: Record<string, unknown>): SessionTokens {
  return {
    userId: String(body.user_id),
    username: String(body.username),
    token: String(body.token),
    expiresAtMs: Number(body.expires_at_ms),
    refreshToken: String(body.refresh_token ?? ""),
    refreshExpiresAtMs: Number(body.refresh_expires_at_ms ?? 0),
    sessionId: String(body.session_id ?? ""),
  };
}

/** POST /v1/signup or /v1/login on the edge's HTTP API: a new session for this device. */
export async function authenticate(baseUrl: string, kind: "signup" | "login", username: string, password: string, deviceId?: string): Promise<SessionTokens> {
  return sessionTokensOf(await postJson(baseUrl, `/v1/${kind}`, { username, password, ...(deviceId ? { device_id: deviceId } : {}) }));
}
