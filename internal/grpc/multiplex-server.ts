import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { MultiplexedCall, MultiplexedResult } from "../../gen/chat/internal/v1/multiplex.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { toCallError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { BATCH_MAX_BYTES } from "./message-size.js";
import { serveTraced, type ServerCallName } from "./serve-traced.js";

/** A unary method as a multiplexed call runs it: decode, run (caller policy included), encode. */
export interface MultiplexedMethod {
  name: ServerCallName;
  run(payload: Buffer, call: ServerDuplexStream<unknown, unknown>): Promise<Buffer>;
}

/** What every <Service>MultiplexRequest and Response carries. */
export interface CallBatch { calls: MultiplexedCall[] }
export interface ResultBatch { results: MultiplexedResult[] }

interface StreamState {
  inFlight: number;
  ended: boolean;
  /** Results finished in one callback, written together (flushed in a microtask). */
  out: MultiplexedResult[];
  outBytes: number;
  flushing: boolean;
}

/**
 * Serves a service's Multiplex stream (multiplex.proto): each call runs as the unary method it
 * names (its own SERVER span, child of the caller's, its metrics, its errors mapped once, its
 * caller policy) and is answered by id once done; results finished together go out in one message.
 * `drain` ends every stream once its calls are answered; a call that arrives on a draining
 * stream is refused UNAVAILABLE before it runs (nothing happened: the caller sends it again,
 * to whichever instance then owns it).
 */
export class MultiplexServer {
  private readonly streams = new Map<ServerDuplexStream<CallBatch, ResultBatch>, StreamState>();
  private draining = false;
  private drained?: () => void;

  constructor(private readonly methods: ReadonlyMap<string, MultiplexedMethod>, private readonly log: Logger) {}

  readonly handler = (call: ServerDuplexStream<CallBatch, ResultBatch>): void => {
    const state: StreamState = { inFlight: 0, ended: false, out: [], outBytes: 0, flushing: false };
    this.streams.set(call, state);
    const peer = call.getPeer();
    const flush = () => {
      state.flushing = false;
      if (state.out.length === 0) return;
      const results = state.out;
      state.out = [];
      state.outBytes = 0;
      if (!state.ended && !call.cancelled) call.write({ results });
      if (state.inFlight === 0 && (this.draining || call.readableEnded)) this.finish(call, state);
    };
    const reply = (r: MultiplexedResult) => {
      state.inFlight--;
      state.out.push(r);
      state.outBytes += r.result?.$case === "payload" ? r.result.value.length : 64;
      if (state.outBytes >= BATCH_MAX_BYTES) flush();
      else if (!state.flushing) {
        state.flushing = true;
        queueMicrotask(flush);
      }
    };
    const fail = (id: number, err: unknown) => reply({ id, result: { $case: "error", value: toCallError(err) } });
    call.on("data", (batch: CallBatch) => {
      for (const c of batch.calls) {
        state.inFlight++;
        if (this.draining) {
          fail(c.id, new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "this instance is shutting down; try again"));
          continue;
        }
        const m = this.methods.get(c.method);
        if (!m) {
          fail(c.id, ChatError.invalid(`no multiplexed method ${c.method}`));
          continue;
        }
        const carrier: Record<string, string> = {};
        if (c.traceparent) carrier["traceparent"] = c.traceparent;
        if (c.tracestate) carrier["tracestate"] = c.tracestate;
        void serveTraced(m.name, peer, carrier, this.log, () => m.run(c.payload, call as ServerDuplexStream<unknown, unknown>)).then((r) =>
          "ok" in r ? reply({ id: c.id, result: { $case: "payload", value: r.ok } }) : fail(c.id, r.err),
        );
      }
    });
    call.on("end", () => { if (state.inFlight === 0 && state.out.length === 0) this.finish(call, state); });
    const gone = () => { state.ended = true; this.forget(call); };
    call.on("error", gone);
    call.on("cancelled", gone);
  };

  private finish(call: ServerDuplexStream<CallBatch, ResultBatch>, state: StreamState): void {
    if (state.ended) return;
    state.ended = true;
    call.end();
    this.forget(call);
  }

  private forget(call: ServerDuplexStream<CallBatch, ResultBatch>): void {
    this.streams.delete(call);
    if (this.draining && this.streams.size === 0) this.drained?.();
  }

  /** Refuses new calls, and resolves once every stream has answered its calls and ended. */
  drain(): Promise<void> {
    this.draining = true;
    for (const [call, state] of [...this.streams]) if (state.inFlight === 0 && state.out.length === 0) this.finish(call, state);
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => { this.drained = resolve; });
  }
}
