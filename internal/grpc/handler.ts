import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";

export type UnaryHandler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>;

/** Async handlers for every method of a service definition (ts-proto's `XServiceService`). */
export type AsyncService<Def> = {
  [K in keyof Def]: Def[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? UnaryHandler<Req, Res>
    : never;
};

/**
 * Adapts async handlers to grpc-js callbacks: whatever a handler throws is
 * mapped once, in toServiceError, and logged when it is not a domain error.
 */
export function implement<Def extends object>(def: Def, impl: AsyncService<Def>, log: Logger): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const name of Object.keys(def) as Array<keyof Def & string>) {
    const handler = impl[name] as UnaryHandler<unknown, unknown>;
    out[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      handler(call.request, call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          const chatErr = err instanceof ChatError ? err : undefined;
          if (!chatErr || chatErr.code === ErrorCode.ERROR_CODE_INTERNAL) log.error("rpc failed", { method: name, err });
          callback(toServiceError(err) as never, null);
        },
      );
    };
  }
  return out;
}
