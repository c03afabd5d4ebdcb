import { createFileRegistry, fromBinary, fromJson, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { CLIENT_DESCRIPTORS } from "../../gen/chat/v1/client-descriptors.js";
import { ClientFrame, ServerFrame } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { publicMessage } from "../errors/http.js";

/**
 * The client protocol's schema, for strict proto3 JSON. ts-proto's fromJSON coerces
 * (an object becomes "[object Object]", -1 an invalid uint64, a second oneof case is
 * dropped); @bufbuild/protobuf's fromJson implements the JSON mapping to the letter:
 * wrong types, out-of-range numbers, unknown keys and two cases of one oneof are errors
 * that name the field. The parsed message crosses to ts-proto's types as binary.
 */
const CLIENT_FRAME: DescMessage = (() => {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(CLIENT_DESCRIPTORS, "base64")));
  const schema = registry.getMessage("chat.v1.ClientFrame");
  if (!schema) throw new Error("chat.v1.ClientFrame missing from the generated descriptors (run make gen)");
  return schema;
})();

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
      return ClientFrame.decode(toBinary(CLIENT_FRAME, fromJson(CLIENT_FRAME, parsed as never)));
    }
    if (!isBinary) throw new Error("text frame on the protobuf subprotocol");
    return ClientFrame.decode(data);
  } catch (err) {
    const message = (err as Error).message;
    // A well-formed frame with a bad value ("cannot decode field chat.v1.X.y from JSON: ...") is a bad
    // argument, named; anything else (not JSON, an unknown key, two actions in one frame) a bad frame.
    const code = /^cannot decode field /.test(message) ? ErrorCode.ERROR_CODE_INVALID_ARGUMENT : ErrorCode.ERROR_CODE_INVALID_FRAME;
    throw new ChatError(code, `malformed frame: ${message}`, { cause: err });
  }
}

/**
 * The ref of a frame that failed to decode, when it can still be read (a JSON
 * object with a numeric ref), so the client can match the error to its request.
 */
export function refOfMalformed(data: Buffer, isBinary: boolean, mode: FrameMode): number {
  if (mode !== "json" || isBinary) return 0;
  try {
    const ref = (JSON.parse(data.toString("utf8")) as { ref?: unknown }).ref;
    const n = typeof ref === "number" ? ref : typeof ref === "string" ? Number(ref) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * An event's encoded frame per subprotocol, kept while the event object lives. A delivery
 * hands every session of a user the same event object: encoded once, not once per session
 * (a 100,000-character message to a user with five devices was five 400 KB encodes in a row
 * on the edge's loop). Event frames carry no ref, so the bytes are the same for each.
 */
const encodedEvents = new WeakMap<object, { json?: string; proto?: Buffer }>();

function encodeFrame(frame: ServerFrame, mode: FrameMode): Buffer | string {
  if (mode === "json") return JSON.stringify(ServerFrame.toJSON(frame));
  return Buffer.from(ServerFrame.encode(frame).finish());
}

export function encodeServerFrame(frame: ServerFrame, mode: FrameMode): Buffer | string {
  if (frame.ref !== 0 || frame.kind?.$case !== "event") return encodeFrame(frame, mode);
  const event = frame.kind.value;
  let cached = encodedEvents.get(event);
  if (!cached) encodedEvents.set(event, (cached = {}));
  if (mode === "json") return (cached.json ??= encodeFrame(frame, mode) as string);
  return (cached.proto ??= encodeFrame(frame, mode) as Buffer);
}

export function errorFrame(ref: number, err: ChatError): ServerFrame {
  return {
    ref,
    kind: {
      $case: "error",
      value: {
        code: err.code,
        // Internal addresses and driver texts stay in the logs (one rule for HTTP and WebSocket).
        message: publicMessage(err),
        retryable: err.retryable,
        retryAfterMs: err.retryAfterMs,
      },
    },
  };
}
