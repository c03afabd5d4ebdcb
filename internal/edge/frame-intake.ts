import type { WebSocket } from "ws";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { decodeClientFrame, errorFrame, modeOf, refOfMalformed } from "./frames.js";
import type { TokenBucket } from "./rate-limit.js";
import { CLOSE, type Session } from "./session.js";

/** A frame whose decoding and checks take a noticeable slice of the loop (~0.3 ms and up): one a turn per session. */
export const LARGE_FRAME_BYTES = 64 * 1024;

export interface FrameIntakeConfig {
  maxFrameBytes: number;
  maxQueuedFrames: number;
  maxQueuedBytes: number;
}

/** Where a socket's read budget comes from (READ_BYTES_PER_S): the edge's, shared by all sessions. */
export interface ReadBudgets {
  /** A fresh budget, for a socket before its Hello. */
  make(): TokenBucket;
  /** The budget all sessions of a user on this edge share; `undefined` for a user with none registered here. */
  ofUser(userId: string): TokenBucket | undefined;
}

/**
 * What the edge does with the frames one WebSocket reads, before a session handles them: the
 * read budget, one large frame a turn, decoding, and the bound on frames waiting for replies.
 *
 * A class rather than closures in the socket handler, because an edge holds tens of thousands
 * of idle sockets: each closure and its context was another ~60-100 bytes a session, and the
 * queues and budgets it needs only while frames arrive are allocated then (docs/performance.md,
 * "Idle session memory").
 */
export class FrameIntake {
  /** Frames handled one after another (sends and typing go around it); how many wait is bounded. */
  private chain: Promise<void> | undefined;
  private queued = 0;
  private queuedBytes = 0;
  /** Frames behind a large one, for the next turn; `turn` is set only while it waits. */
  private ready: Array<[Buffer, boolean]> | undefined;
  private turn: NodeJS.Immediate | undefined;
  /** The socket's own budget before its Hello; the user's shared one afterwards. */
  private own: TokenBucket | undefined;
  /** Frames read past the budget, held undecoded until the debt is paid. */
  private held: Array<[Buffer, boolean]> | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly session: Session,
    private readonly config: FrameIntakeConfig,
    private readonly budgets: ReadBudgets,
  ) {}

  /** A frame as ws hands it over. */
  read(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (this.resumeTimer || (this.held?.length ?? 0) > 0) (this.held ??= []).push([buf, isBinary]);
    else this.admit(buf, isBinary);
  }

  /** The socket closed: frames held back by the budget are dropped (those already handed over still run). */
  closed(): void {
    clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    this.held = undefined;
  }

  /**
   * READ_BYTES_PER_S: past the budget the socket is paused, and the frames ws had already read
   * are held until the debt is paid, then handled in order at the rate. Once the session is
   * registered the budget is its user's, shared by all the user's sessions on this edge, and its
   * burst is one largest frame (a legal message never waits): with a budget of two largest frames
   * per socket, an attacker's five sessions had ~thirty 400 KB frames read and decoded in its
   * first moment, most of them to be refused, and that moment was the tail of a victim's sends
   * (docs/security.md, "One read budget per user").
   */
  private reads(): TokenBucket {
    const shared = this.session.isAuthenticated ? this.budgets.ofUser(this.session.userId) : undefined;
    if (shared) {
      this.own = undefined;
      return shared;
    }
    return (this.own ??= this.budgets.make());
  }

  private admit(buf: Buffer, isBinary: boolean): boolean {
    const wait = this.reads().spend(buf.length);
    this.handleInTurn(buf, isBinary);
    if (wait === 0) return true;
    this.ws.pause();
    this.resumeTimer = setTimeout(() => this.drainHeld(), wait);
    return false;
  }

  private drainHeld(): void {
    this.resumeTimer = undefined;
    const held = this.held;
    while (held && held.length > 0) {
      const [buf, isBinary] = held.shift()!;
      if (!this.admit(buf, isBinary)) return;
    }
    this.ws.resume();
  }

  /**
   * At most one large frame of a session per turn of the event loop: ws hands over every frame
   * it read from a socket's data at once, and a burst of the largest legal frames (each decoded
   * and checked) held every other socket's frames behind it for tens of milliseconds
   * (docs/security.md, "Sends"). Small frames go on at once; a frame behind a large one waits
   * for the next turn with it, in order.
   */
  private handleInTurn(buf: Buffer, isBinary: boolean): void {
    if (this.turn) {
      (this.ready ??= []).push([buf, isBinary]);
      return;
    }
    this.onFrame(buf, isBinary);
    if (buf.length >= LARGE_FRAME_BYTES) this.turn = setImmediate(() => this.nextTurn());
  }

  private nextTurn(): void {
    this.turn = undefined;
    const ready = this.ready;
    while (ready && ready.length > 0) {
      const [buf, isBinary] = ready.shift()!;
      this.onFrame(buf, isBinary);
      if (buf.length >= LARGE_FRAME_BYTES) {
        this.turn = setImmediate(() => this.nextTurn());
        return;
      }
    }
  }

  private onFrame(buf: Buffer, isBinary: boolean): void {
    const session = this.session;
    if (buf.length > this.config.maxFrameBytes) {
      session.send(errorFrame(0, new ChatError(ErrorCode.ERROR_CODE_INVALID_FRAME, `a frame of ${buf.length} bytes is over the limit of ${this.config.maxFrameBytes}`)));
      session.close(CLOSE.tooLarge, "frame too large");
      return;
    }
    let frame;
    try {
      frame = decodeClientFrame(buf, isBinary, modeOf(this.ws.protocol));
    } catch (err) {
      session.send(errorFrame(refOfMalformed(buf, isBinary, modeOf(this.ws.protocol)), ChatError.from(err)));
      return;
    }
    // Sends are pipelined (ordered per conversation inside the session), and typing indicators
    // are handled as they arrive with them: queued behind a slow request, a keystroke's indicator
    // was handled after the message typed next, so it showed "typing…" again after that message
    // and its throttle entry outlived the message's reset (the next keystroke was refused). Both
    // are throttled when handled; the rest is sequential.
    const kind = frame.kind?.$case;
    if ((kind === "send" || kind === "typing") && session.isAuthenticated) {
      void session.handle(frame);
      return;
    }
    // A client that sends faster than its requests complete is told so, not buffered without end.
    if (this.queued >= this.config.maxQueuedFrames || this.queuedBytes + buf.length > this.config.maxQueuedBytes) {
      session.send(errorFrame(frame.ref, new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "too many frames waiting: wait for replies before sending more", { retryAfterMs: 100 })));
      return;
    }
    this.queued++;
    this.queuedBytes += buf.length;
    const bytes = buf.length;
    this.chain = (this.chain ?? Promise.resolve()).then(() => session.handle(frame)).finally(() => {
      this.queuedBytes -= bytes;
      // Nothing waits any more: an idle session holds no settled promise.
      if (--this.queued === 0) this.chain = undefined;
    });
  }
}
