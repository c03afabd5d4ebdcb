import type { ClientDuplexStream } from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import type { AckRequest, AckResponse, ChatServiceClient, MultiplexRequest, MultiplexResponse, SendRequest, SendResponse, TypingRequest, TypingResponse } from "../../gen/chat/internal/v1/chat.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { fromCallError, fromServiceError, grpcStatusOf } from "../errors/grpc-status.js";
import { serverAttributes, statusName } from "../telemetry/rpc.js";
import { ChatMetrics, markRemote, secondsSince } from "../telemetry/telemetry.js";

/** Each kind of call the stream carries, with its request and response. */
export interface MultiplexedCalls {
  send: [SendRequest, SendResponse];
  ack: [AckRequest, AckResponse];
  typing: [TypingRequest, TypingResponse];
}
export type MultiplexedKind = keyof MultiplexedCalls;

const SERVICE = "chat.internal.v1.ChatService";
const METHOD: Record<MultiplexedKind, string> = { send: "Send", ack: "Ack", typing: "Typing" };
/** Unanswered calls on one stream at most: past it a call is refused at once (retryable), not buffered without bound. */
export const MAX_IN_FLIGHT = 10_000;
/** How often deadlines are checked: one timer per stream, not one per call. */
const DEADLINE_TICK_MS = 100;

interface Pending {
  kind: MultiplexedKind;
  deadline: number;
  started: number;
  span: Span;
  resolve(res: unknown): void;
  reject(err: ChatError): void;
}

/** One open stream and its unanswered calls. */
class OpenStream {
  readonly pending = new Map<number, Pending>();
  private timer?: NodeJS.Timeout;
  closed = false;

  constructor(readonly call: ClientDuplexStream<MultiplexRequest, MultiplexResponse>, private readonly onClosed: () => void) {
    call.on("data", (res: MultiplexResponse) => this.answer(res));
    // A status other than OK ends the stream with an error; then "close". Either way every
    // unanswered call fails as a lost connection fails a unary one: UNAVAILABLE, send it again.
    call.on("error", (err: unknown) => this.close(fromServiceError(err)));
    call.on("close", () => this.close(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service is unavailable; try again")));
    call.on("end", () => this.close(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service is unavailable; try again")));
  }

  add(id: number, p: Pending): void {
    this.pending.set(id, p);
    this.timer ??= setInterval(() => this.expire(), DEADLINE_TICK_MS).unref();
  }

  private answer(res: MultiplexResponse): void {
    const p = this.pending.get(res.id);
    if (!p) return; // its deadline passed: already failed
    this.pending.delete(res.id);
    const r = res.response;
    if (!r) settle(p, new ChatError(ErrorCode.ERROR_CODE_INTERNAL, "a multiplexed reply without a response"));
    else if (r.$case === "error") {
      const e = fromCallError(r.value);
      markRemote(e);
      settle(p, e);
    }
    else if (r.$case !== p.kind) settle(p, new ChatError(ErrorCode.ERROR_CODE_INTERNAL, `a ${p.kind} call answered as ${r.$case}`));
    else settle(p, undefined, r.value);
    this.idle();
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(id);
      settle(p, new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service did not answer in time; try again"));
    }
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
    for (const p of this.pending.values()) settle(p, err);
    this.pending.clear();
    this.idle();
  }
}

/** Ends a call's span, records its duration, and answers its caller. */
function settle(p: Pending, err: ChatError | undefined, value?: unknown): void {
  const code = err ? grpcStatusOf(err.code) : 0;
  ChatMetrics.get().rpcClientDuration.record(secondsSince(p.started), { "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": METHOD[p.kind], "rpc.grpc.status_code": statusName(code) });
  p.span.setAttribute("rpc.grpc.status_code", code);
  if (err) {
    p.span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    p.span.end();
    p.reject(err);
  } else {
    p.span.end();
    p.resolve(value);
  }
}

/**
 * An edge's calls to one chat instance, multiplexed on one long-lived ChatService.Multiplex
 * stream (opened on first use, again after it ends). Each call looks like the unary call it
 * replaces: a CLIENT span named for the method, whose context travels in the call, its
 * metrics, its deadline, and the peer's ChatError. Calls are answered by id in any order;
 * the caller orders what must be ordered (a session's sends to a conversation, one at a time).
 */
export class MultiplexClient {
  private stream?: OpenStream;
  private nextId = 1;

  constructor(private readonly client: ChatServiceClient) {}

  call<K extends MultiplexedKind>(kind: K, req: MultiplexedCalls[K][0], timeoutMs: number): Promise<MultiplexedCalls[K][1]> {
    const method = METHOD[kind];
    return trace.getTracer("meshchat").startActiveSpan(
      `${SERVICE}/${method}`,
      { kind: SpanKind.CLIENT, attributes: { "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": method, ...serverAttributes(this.client.getChannel().getTarget()) } },
      (span) => new Promise<MultiplexedCalls[K][1]>((resolve, reject) => {
        const p: Pending = { kind, deadline: Date.now() + timeoutMs, started: performance.now(), span, resolve: resolve as (r: unknown) => void, reject };
        const s = this.open();
        if (s.pending.size >= MAX_IN_FLIGHT) {
          settle(p, new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "too many calls in flight to a chat instance; try again", { retryAfterMs: 100 }));
          return;
        }
        const carrier: Record<string, string> = {};
        propagation.inject(context.active(), carrier);
        const id = this.nextId++;
        s.add(id, p);
        s.call.write({ id, traceparent: carrier["traceparent"] ?? "", tracestate: carrier["tracestate"] ?? "", request: { $case: kind, value: req } as MultiplexRequest["request"] });
      }),
    );
  }

  private open(): OpenStream {
    if (this.stream && !this.stream.closed) return this.stream;
    const s: OpenStream = new OpenStream(this.client.multiplex(), () => { if (this.stream === s) this.stream = undefined; });
    this.stream = s;
    return s;
  }

  /** Ends the stream; its unanswered calls fail UNAVAILABLE. */
  close(): void {
    this.stream?.close(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "a service is unavailable; try again"));
  }
}
