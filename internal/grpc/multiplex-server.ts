import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { AckRequest, AckResponse, MultiplexRequest, MultiplexResponse, SendRequest, SendResponse, TypingRequest, TypingResponse } from "../../gen/chat/internal/v1/chat.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { toCallError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { serveTraced, type StreamHandler } from "./handler.js";

/** What a multiplexed stream carries: the unary handlers of these methods, called once per call. */
export interface MultiplexedMethods {
  send(req: SendRequest): Promise<SendResponse>;
  ack(req: AckRequest): Promise<AckResponse>;
  typing(req: TypingRequest): Promise<TypingResponse>;
}

type Call = NonNullable<MultiplexRequest["request"]>;

/** Each call's name in traces and metrics: the unary method it stands for, so a send looks the same either way. */
const METHOD: Record<Call["$case"], string> = { send: "Send", ack: "Ack", typing: "Typing" };
const SERVICE = "chat.internal.v1.ChatService";

/**
 * Serves ChatService.Multiplex: each call on a stream runs like the unary method it stands
 * for (its own SERVER span, child of the caller's, its metrics, its errors mapped once) and
 * is answered by id as soon as it is done. `drain` ends every stream once its calls are
 * answered; a call that arrives on a draining stream is refused UNAVAILABLE before it runs
 * (nothing happened: the edge sends it again on a stream to the new owner).
 */
export class MultiplexServer {
  private readonly streams = new Map<ServerDuplexStream<MultiplexRequest, MultiplexResponse>, { inFlight: number; ended: boolean }>();
  private draining = false;
  private drained?: () => void;

  constructor(private readonly methods: MultiplexedMethods) {}

  readonly handler: StreamHandler<MultiplexRequest, MultiplexResponse> = (call, log) => {
    const state = { inFlight: 0, ended: false };
    this.streams.set(call, state);
    const peer = call.getPeer();
    const finish = () => {
      if (state.ended) return;
      state.ended = true;
      this.streams.delete(call);
      call.end();
      if (this.streams.size === 0) this.drained?.();
    };
    const reply = (res: MultiplexResponse) => {
      if (!state.ended && !call.cancelled) call.write(res);
      state.inFlight--;
      if (state.inFlight === 0 && (this.draining || call.readableEnded)) finish();
    };
    call.on("data", (req: MultiplexRequest) => {
      state.inFlight++;
      const id = req.id;
      if (this.draining) {
        reply({ id, response: { $case: "error", value: toCallError(new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "this chat instance is shutting down; try again")) } });
        return;
      }
      const r = req.request;
      if (!r) {
        reply({ id, response: { $case: "error", value: toCallError(ChatError.invalid("a multiplexed call needs a request")) } });
        return;
      }
      const carrier: Record<string, string> = {};
      if (req.traceparent) carrier["traceparent"] = req.traceparent;
      if (req.tracestate) carrier["tracestate"] = req.tracestate;
      void serveTraced({ service: SERVICE, method: METHOD[r.$case] }, peer, carrier, log, () => this.run(r)).then((out) =>
        reply({ id, response: "ok" in out ? out.ok : { $case: "error", value: toCallError(out.err) } }),
      );
    });
    call.on("end", () => { if (state.inFlight === 0) finish(); });
    call.on("error", () => { state.ended = true; this.streams.delete(call); if (this.streams.size === 0) this.drained?.(); });
    call.on("cancelled", () => { state.ended = true; this.streams.delete(call); if (this.streams.size === 0) this.drained?.(); });
  };

  private async run(r: Call): Promise<NonNullable<MultiplexResponse["response"]>> {
    switch (r.$case) {
      case "send": return { $case: "send", value: await this.methods.send(r.value) };
      case "ack": return { $case: "ack", value: await this.methods.ack(r.value) };
      case "typing": return { $case: "typing", value: await this.methods.typing(r.value) };
    }
  }

  /** Refuses new calls, and resolves once every stream has answered its calls and ended. */
  drain(): Promise<void> {
    this.draining = true;
    for (const [call, state] of [...this.streams]) {
      if (state.inFlight === 0 && !state.ended) {
        state.ended = true;
        this.streams.delete(call);
        call.end();
      }
    }
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => { this.drained = resolve; });
  }
}
