import type { Client, ClientDuplexStream } from "@grpc/grpc-js";
import { context, propagation } from "@opentelemetry/api";
import type { MultiplexedCall, MultiplexedResult } from "../../gen/chat/internal/v1/multiplex.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { fromCallError, fromServiceError } from "../errors/grpc-status.js";
import { BATCH_MAX_BYTES } from "./message-size.js";
import type { CallBatch, ResultBatch } from "./multiplex-server.js";

/** Unanswered calls on one stream at most: past it a call is refused at once (retryable), not buffered without bound. */
export const MAX_IN_FLIGHT = 10_000;
/** A call whose request is larger goes as a unary call (MultiplexClient.call says why). */
export const MULTIPLEX_MAX_CALL_BYTES = 16 * 1024;
/** How often deadlines are checked: one timer per stream, not one per call. */
const DEADLINE_TICK_MS = 100;

/** A unary method of a grpc-js client, with what grpc-js attaches to it. */
export interface MultiplexableMethod<Req, Res> {
  path: string;
  requestSerialize(req: Req): Buffer;
  responseDeserialize(b: Buffer): Res;
}

interface Pending {
  deadline: number;
  sentAt: number;
  decode(b: Buffer): unknown;
  resolve(res: unknown): void;
  reject(err: ChatError): void;
}

const unavailable = () => new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service is unavailable; try again");

/** One open stream: its unanswered calls, and the calls of this tick not yet written. */
class OpenStream {
  readonly pending = new Map<number, Pending>();
  private queue: MultiplexedCall[] = [];
  private queuedBytes = 0;
  private flushing = false;
  private timer?: NodeJS.Timeout;
  /** When the peer last sent anything on this stream (its opening counts). */
  private lastHeardAt = Date.now();
  closed = false;

  constructor(private readonly call: ClientDuplexStream<CallBatch, ResultBatch>, private readonly onClosed: () => void) {
    call.on("data", (batch: ResultBatch) => {
      this.lastHeardAt = Date.now();
      for (const r of batch.results) this.answer(r);
    });
    // A status other than OK ends the stream with an error, then "close". Either way every
    // unanswered call fails as a lost connection fails a unary one: UNAVAILABLE, send it again.
    call.on("error", (err: unknown) => this.close(fromServiceError(err)));
    call.on("end", () => this.close(unavailable()));
    call.on("close", () => this.close(unavailable()));
  }

  send(c: MultiplexedCall, p: Pending): void {
    this.pending.set(c.id, p);
    this.timer ??= setInterval(() => this.expire(), DEADLINE_TICK_MS).unref();
    this.queue.push(c);
    this.queuedBytes += c.payload.length;
    // The calls made in one callback go out in one stream message (at most about a batch's
    // bytes), flushed in a microtask: not at setImmediate, which waits for the loop's whole
    // I/O phase, and under the abuse bench's 400 KB frames held a victim's send ~20 ms.
    if (this.queuedBytes >= BATCH_MAX_BYTES) this.flush();
    else if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    if (this.queue.length === 0 || this.closed) return;
    const calls = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.call.write({ calls });
  }

  private answer(r: MultiplexedResult): void {
    const p = this.pending.get(r.id);
    if (!p) return; // its deadline passed: already failed
    this.pending.delete(r.id);
    const res = r.result;
    if (!res) p.reject(new ChatError(ErrorCode.ERROR_CODE_INTERNAL, "a multiplexed result without a payload or an error"));
    else if (res.$case === "error") p.reject(fromCallError(res.value));
    else p.resolve(p.decode(Buffer.from(res.value.buffer, res.value.byteOffset, res.value.byteLength)));
    this.idle();
  }

  /**
   * Fails the calls past their deadline. If the peer sent nothing at all since one of them went
   * out, the stream itself is taken for dead (a frozen process keeps its connection open, and
   * would hold every later call until its deadline too): all its calls fail UNAVAILABLE and the
   * next call opens a new stream, which the channel places on an instance it still lists. A
   * slow peer that answers other calls meanwhile keeps its stream.
   */
  private expire(): void {
    const now = Date.now();
    let silent = false;
    for (const [id, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(id);
      if (p.sentAt >= this.lastHeardAt) silent = true;
      p.reject(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service did not answer in time; try again"));
    }
    if (silent) this.close(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service stopped answering; try again"));
    this.idle();
  }

  private idle(): void {
    if (this.pending.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  close(err: ChatError): void {
    if (!this.closed) {
      this.closed = true;
      this.onClosed();
      this.call.end();
    }
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.queue = [];
    this.idle();
  }
}

/**
 * A client's unary calls to one instance, multiplexed on one long-lived Multiplex stream
 * (multiplex.proto), opened on first use and again after it ends. `call` (client.ts) sends a
 * client's calls here once `multiplex` has been called for it; each keeps its span, metrics,
 * deadline and the peer's ChatError. Calls are answered by id in any order: callers order
 * what must be ordered (a session's sends to a conversation go one at a time).
 */
export class MultiplexClient {
  /** `streams` slots, each opened on first use and again after its stream ends; calls take them in turn. */
  private readonly slots: Array<OpenStream | undefined>;
  private turn = 0;
  private nextId = 1;

  constructor(
    private readonly openStream: () => ClientDuplexStream<CallBatch, ResultBatch>,
    private readonly unaryMethods: ReadonlySet<string> = new Set(),
    /**
     * Streams to keep. One for a channel to one instance. On a channel balanced round robin over
     * several instances, each stream goes to the instance the balancer picks when it opens, so
     * several streams spread the calls over them (and a stream to an instance that goes is opened
     * again to a live one).
     */
    streams = 1,
  ) {
    this.slots = new Array<OpenStream | undefined>(Math.max(1, streams));
  }

  /**
   * Sends the call on the stream; undefined when it must go as a unary call instead: a large
   * request, or a method whose answer can be large (`unaryMethods`). On one stream a large
   * message holds back every call and result behind it (HTTP/2 flow control is per stream),
   * where separate unary calls interleave; and a large call's own overhead is small beside
   * its bytes. So one user's 400 KB message never delays another user's small one.
   */
  call<Req, Res>(method: MultiplexableMethod<Req, Res>, req: Req, timeoutMs: number): Promise<Res> | undefined {
    const name = method.path.slice(method.path.lastIndexOf("/") + 1);
    if (this.unaryMethods.has(name)) return undefined;
    const payload = method.requestSerialize(req);
    if (payload.length > MULTIPLEX_MAX_CALL_BYTES) return undefined;
    return new Promise<Res>((resolve, reject) => {
      const s = this.open();
      if (s.pending.size >= MAX_IN_FLIGHT) {
        reject(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "too many calls in flight to one instance; try again", { retryAfterMs: 100 }));
        return;
      }
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      const id = this.nextId++;
      s.send(
        { id, method: name, payload, traceparent: carrier["traceparent"] ?? "", tracestate: carrier["tracestate"] ?? "" },
        { deadline: Date.now() + timeoutMs, sentAt: Date.now(), decode: (b) => method.responseDeserialize(b), resolve: resolve as (r: unknown) => void, reject },
      );
    });
  }

  private open(): OpenStream {
    const k = this.turn;
    this.turn = (k + 1) % this.slots.length;
    const open = this.slots[k];
    if (open && !open.closed) return open;
    const s: OpenStream = new OpenStream(this.openStream(), () => { if (this.slots[k] === s) this.slots[k] = undefined; });
    this.slots[k] = s;
    return s;
  }

  /** Ends the streams; their unanswered calls fail UNAVAILABLE. */
  close(): void {
    for (const s of this.slots) s?.close(unavailable());
  }
}

const multiplexes = new WeakMap<Client, MultiplexClient>();

/**
 * From now on, `call` sends this client's unary calls on its service's Multiplex stream(s). One
 * stream goes to one backend: a client of a balanced channel asks for several (`streams`), or
 * pins its calls to whichever instance its one stream reached.
 */
export function multiplex(client: Client & { multiplex(): ClientDuplexStream<CallBatch, ResultBatch> }, options: { unaryMethods?: string[]; streams?: number } = {}): void {
  if (!multiplexes.has(client)) multiplexes.set(client, new MultiplexClient(() => client.multiplex(), new Set(options.unaryMethods), options.streams));
}

/** The client's stream, when `multiplex` was called for it. */
export function multiplexOf(client: Client): MultiplexClient | undefined {
  return multiplexes.get(client);
}
