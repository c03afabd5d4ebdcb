import type { ReadLogResponse } from "../../gen/chat/internal/v1/store.js";
import type { Event, ServerFrame } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { textBytes } from "../grpc/message-size.js";
import type { Logger } from "../log/logger.js";
import { recipientLabel, recordDeviceWrite } from "../telemetry/messaging.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";
import { errorFrame } from "./frames.js";

/** Live events one device may have held back during a catch-up (they are bounded in bytes too). */
const MAX_BUFFERED_LIVE = 10_000;
/**
 * Waits before each new read after the store answered a retryable error (UNAVAILABLE: a
 * log being taken back, Cassandra restarting): ~28 s in all, in the session. Ending the
 * session at the first failure made every connected device reconnect every 250 ms for as
 * long as the store was away (its Welcome came before the sync, so the client's back-off
 * never grew), and a request the device had in flight lost its answer with the socket.
 */
const SYNC_RETRY_DELAYS_MS = [250, 500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000];

/** What the machine needs of the session it runs in. */
export interface CatchUpIo {
  /** Reads a page of the user's log after `afterPos`: at most `limit` events, fewer when the store cuts by bytes (then `more`). */
  readLog(afterPos: number, limit: number): Promise<ReadLogResponse>;
  /**
   * The log's head, from a call shared with the other sessions asking in the same tick. A
   * Hello's catch-up asks it first: most reconnecting devices hold everything already, and
   * one shared call per tick instead of a read per device is what lets a storm of them
   * (an edge restarting) connect in seconds.
   */
  logHead?(): Promise<number>;
  /** Sends a frame to the device; `onWritten` runs once the socket has taken it, or at once if it is not sent. */
  emit(frame: ServerFrame, onWritten?: () => void): void;
  /** Bytes the socket holds unsent, for pacing a backlog to the device's reading speed. */
  bufferedBytes(): number;
  /** The log cannot be read: end the session (the device reconnects and resumes from its cursor). */
  end(reason: string): void;
}

export interface CatchUpConfig {
  /** Events asked of the store per page (SessionConfig.syncPageSize). */
  pageSize: number;
  /** The socket's send-buffer bound (SessionConfig.maxBufferedBytes): a quarter of it paces a catch-up, all of it bounds the held live events. */
  maxBufferedBytes: number;
}

/**
 * The edge's core promise for one device (docs/requirements.md: P5, R5): the device
 * sees its user's sync log gapless and exactly once, in position order. From
 * `start` it reads the log after the device's cursor page by page, holds live
 * events back meanwhile and sends them after the stored ones, drops positions
 * already sent, and reads the store instead of sending whenever a live event
 * skips ahead (a gap) or the store's head is past the cursor (a lost delivery).
 * It knows nothing of sockets or auth: a session gives it a log reader, an emit
 * function and its send buffer's size (CatchUpIo), and feeds it live events,
 * head checks and the client's resync requests.
 */
export class CatchUp {
  /** Highest sync-log position sent to this device. */
  private position = 0;
  /** Between `start` and `stop` (the session is authenticated and open); a stopped machine stays stopped. */
  private state: "new" | "active" | "stopped" = "new";
  private syncing = false;
  private resyncNeeded = false;
  /** Live events held while a catch-up runs (allocated when one is held: an idle session holds none). */
  private live: Event[] | undefined;
  /** Text bytes held in `live`. */
  private liveBytes = 0;
  /** A live event was dropped because `live` was full: catch-up must read the store again before Synced. */
  private liveDropped = false;
  /** A paced catch-up waiting on the socket, woken if the session stops (allocated when one waits). */
  private stopWaiters: Set<() => void> | undefined;

  constructor(
    private readonly io: CatchUpIo,
    private readonly config: CatchUpConfig,
    /** Whose device this is, for telemetry and logs (read when used: a session learns them at Hello). */
    private readonly recipient: { readonly userId: string; readonly deviceId: string },
    private readonly log: Logger,
  ) {}

  /** Live events held now (a deliver() during an await may have added some). */
  private liveHeld(): number {
    return this.live?.length ?? 0;
  }

  private active(): boolean {
    return this.state === "active";
  }

  /** Highest sync-log position sent to this device. */
  get cursor(): number {
    return this.position;
  }

  /** The device said Hello holding everything up to `cursor`: catch up from there, then follow live events. */
  start(cursor: number): void {
    if (this.state !== "new") return;
    this.position = cursor;
    this.state = "active";
    void this.sync(true);
  }

  /** The session has ended: nothing more is sent, and a paced catch-up waiting on the socket gives up. */
  stop(): void {
    this.state = "stopped";
    for (const wake of this.stopWaiters ?? []) wake();
  }

  /** The client asked for its log again after `afterPos` (a Sync frame). */
  resync(afterPos: number): void {
    if (!this.active()) return;
    this.position = afterPos;
    this.live = undefined;
    this.liveBytes = 0;
    this.liveDropped = false;
    if (this.syncing) this.resyncNeeded = true;
    else void this.sync();
  }

  /**
   * The store says the user's log reaches `head`: if this session is behind and
   * not already catching up, a live delivery was lost (a stale route, an edge
   * call that failed): read what is missing now rather than at the next event.
   */
  checkHead(head: number): void {
    if (!this.active() || this.syncing) return;
    if (head > this.position) void this.sync();
  }

  /** A live event for this device's user, with the user's log position. */
  deliver(event: Event): void {
    if (!this.active()) return;
    if (this.syncing) {
      // Bounded in count and in bytes (a burst of large messages must not pile up in the edge).
      const size = event.kind?.$case === "message" || event.kind?.$case === "edited" ? textBytes(event.kind.value.text) : 0;
      if (this.liveHeld() < MAX_BUFFERED_LIVE && this.liveBytes + size <= this.config.maxBufferedBytes) {
        (this.live ??= []).push(event);
        this.liveBytes += size;
      } else this.liveDropped = true; // The store has them all: read again instead of holding more.
      return;
    }
    if (event.pos <= this.position) return;
    if (event.pos === this.position + 1) {
      this.position = event.pos;
      this.io.emit({ ref: 0, kind: { $case: "event", value: event } });
      if (event.kind?.$case === "message") {
        const msg = event.kind.value;
        recordDeviceWrite(msg, this.recipient);
        // The sender's own other devices are labelled apart: they are echoes, not deliveries.
        const labels = { "meshchat.recipient": recipientLabel(msg, this.recipient.userId) };
        const m = ChatMetrics.get();
        m.messagesDelivered.add(1, labels);
        m.deliveryLatency.record(Math.max(0, Date.now() - msg.sentAtMs) / 1000, labels);
      }
      return;
    }
    // A gap (an event of ours went to a stale route, or raced): fill it from the store.
    (this.live ??= []).push(event);
    void this.sync();
  }

  /**
   * Sends every stored event after the cursor, then the buffered live ones, then Synced.
   * `probe`: ask the head first, and read only if the log is past the cursor.
   */
  private async sync(probe = false): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    const started = performance.now();
    const m = ChatMetrics.get();
    m.catchups.add(1);
    try {
      for (;;) {
        this.resyncNeeded = false;
        const page = await this.readPage(probe);
        probe = false;
        if (!page || !this.active()) return;
        if (this.resyncNeeded) continue; // the client asked to restart from another cursor
        if (this.position > page.head) {
          // A cursor from the future (another account's, or corrupted): what the device holds cannot be
          // trusted, so it gets the whole log again, from 0, and is told to start over.
          this.io.emit(errorFrame(0, new ChatError(ErrorCode.ERROR_CODE_CURSOR_AHEAD, `cursor ${this.position} is ahead of the log head ${page.head}: replaying from 0`)));
          this.position = 0;
          continue;
        }
        if (page.trimmedTo > this.position) {
          // Older than the log keeps (docs/sync-log-trim.md): the device rebuilds what it holds
          // from the directory and history (a full resync), and the log goes on after the trim.
          this.io.emit({ ref: 0, kind: { $case: "logTrimmed", value: { pos: page.trimmedTo } } });
          this.position = page.trimmedTo;
          m.logTrimmedResyncs.add(1);
          continue;
        }
        for (const ev of page.events) {
          await this.emitInOrder(ev);
          if (!this.active()) return;
        }
        // A short page is not the end: the store also cuts pages by bytes.
        if (page.more || this.resyncNeeded) continue;
        // Everything stored when we read is sent: now the live events held back meanwhile.
        const held = (this.live ?? []).sort((a, b) => a.pos - b.pos);
        const dropped = this.liveDropped;
        this.live = undefined;
        this.liveBytes = 0;
        this.liveDropped = false;
        let gap = dropped;
        for (const ev of held) {
          if (ev.pos <= this.position) continue;
          if (ev.pos !== this.position + 1) { gap = true; break; }
          await this.emitInOrder(ev);
        }
        if (!this.active()) return;
        // Events that arrived while the held ones were streaming are in `live` again: not done yet.
        if (gap || this.resyncNeeded || this.liveHeld() > 0 || this.liveDropped) continue;
        this.io.emit({ ref: 0, kind: { $case: "synced", value: { pos: this.position } } });
        m.catchupDuration.record(secondsSince(started));
        return;
      }
    } catch (err) {
      // The store is unreachable: the device reconnects and resumes from its cursor.
      this.log.warn("sync failed; the device will reconnect and resume", { err, user: this.recipient.userId, device: this.recipient.deviceId, cursor: this.position });
      this.io.emit(errorFrame(0, ChatError.unavailable("sync failed, reconnect to resume", err)));
      this.io.end("sync failed");
    } finally {
      this.syncing = false;
    }
  }

  /**
   * The next page, or undefined if the session stopped meanwhile. A retryable refusal is read
   * again after a wait (SYNC_RETRY_DELAYS_MS) while live events keep being held; anything else,
   * or the last retry failing, is thrown (the session then ends, the cursor where it was).
   */
  private async readPage(probe: boolean): Promise<ReadLogResponse | undefined> {
    for (let failures = 0; ; failures++) {
      try {
        return (probe && (await this.nothingToRead())) || (await this.io.readLog(this.position, this.config.pageSize));
      } catch (err) {
        const retryable = err instanceof ChatError && err.retryable;
        if (!retryable || failures >= SYNC_RETRY_DELAYS_MS.length || !this.active()) throw err;
        if (failures === 0) this.log.warn("sync waiting for the store; reading again in the session", { err, user: this.recipient.userId, device: this.recipient.deviceId, cursor: this.position });
        ChatMetrics.get().catchupRetries.add(1);
        await this.pause(SYNC_RETRY_DELAYS_MS[failures]!);
        if (!this.active()) return undefined;
      }
    }
  }

  /** A wait that stop() cuts short. */
  private async pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.untilStopped(new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); }));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for `done`, or for stop(), whichever comes first. */
  private async untilStopped(done: Promise<void>): Promise<void> {
    let wake!: () => void;
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    const waiters = (this.stopWaiters ??= new Set());
    waiters.add(wake);
    try {
      await Promise.race([done, stopped]);
    } finally {
      waiters.delete(wake);
    }
  }

  /**
   * An empty page when the log's head is the cursor (what a page read now would hold: every
   * event acknowledged before the ask is under the head, and what comes after is delivered
   * live to this session, registered before its catch-up starts); undefined when there is
   * something to read, or no way to ask.
   */
  private async nothingToRead(): Promise<ReadLogResponse | undefined> {
    if (!this.io.logHead) return undefined;
    const head = await this.io.logHead();
    return head === this.position ? { events: [], head, more: false, trimmedTo: 0 } : undefined;
  }

  /**
   * Sends the next event of a catch-up. Past a quarter of the send buffer's
   * bound it waits until the socket has taken the frame, so a backlog streams
   * at the pace the device reads instead of filling the buffer and getting the
   * device cut off as a slow consumer (which would resync into the same wall).
   */
  private async emitInOrder(ev: Event): Promise<void> {
    if (ev.pos !== this.position + 1) return;
    ChatMetrics.get().catchupEvents.add(1);
    this.position = ev.pos;
    const written = new Promise<void>((resolve) => this.io.emit({ ref: 0, kind: { $case: "event", value: ev } }, resolve));
    if (this.io.bufferedBytes() <= this.config.maxBufferedBytes / 4 || !this.active()) return;
    // ws calls back even when the socket dies; the stop wake-up is a safety net, removed after each wait.
    await this.untilStopped(written);
  }
}
