import { ClientFrame, ServerFrame } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

export const PROTO_SUBPROTOCOL = "meshchat.v1.proto";
export const JSON_SUBPROTOCOL = "meshchat.v1.json";
export type FrameMode = "proto" | "json";

export function modeOf(protocol: string): FrameMode {
  return protocol === JSON_SUBPROTOCOL ? "json" : "proto";
}

/** Decodes one client frame; anything malformed is INVALID_FRAME, never a crash. */
export function decodeClientFrame(data: Buffer, isBinary: boolean, mode: FrameMode): ClientFrame {
  try {
    if (mode === "json") {
      if (isBinary) throw new Error("binary frame on the JSON subprotocol");
      const parsed: unknown = JSON.parse(data.toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("frame is not a JSON object");
      return ClientFrame.fromJSON(parsed);
    }
    if (!isBinary) throw new Error("text frame on the protobuf subprotocol");
    return ClientFrame.decode(data);
  } catch (err) {
    throw new ChatError(ErrorCode.ERROR_CODE_INVALID_FRAME, `malformed frame: ${(err as Error).message}`, { cause: err });
  }
}

export function encodeServerFrame(frame: ServerFrame, mode: FrameMode): Buffer | string {
  if (mode === "json") return JSON.stringify(ServerFrame.toJSON(frame));
  return Buffer.from(ServerFrame.encode(frame).finish());
}

export function errorFrame(ref: number, err: ChatError): ServerFrame {
  return {
    ref,
    kind: {
      $case: "error",
      value: {
        code: err.code,
        // INTERNAL never shows its cause to a client.
        message: err.code === ErrorCode.ERROR_CODE_INTERNAL ? "internal error" : err.message,
        retryable: err.retryable,
        retryAfterMs: err.retryAfterMs,
      },
    },
  };
}
