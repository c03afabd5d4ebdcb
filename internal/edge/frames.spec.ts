import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { decodeClientFrame, encodeServerFrame } from "./frames.js";
import { ServerFrame } from "../../gen/chat/v1/client.js";

const json = (o: unknown) => decodeClientFrame(Buffer.from(JSON.stringify(o)), false, "json");
const refusal = (o: unknown): ChatError => {
  try {
    json(o);
  } catch (err) {
    return err as ChatError;
  }
  throw new Error(`accepted ${JSON.stringify(o)}`);
};
const send = (extra: object) => ({ ref: 1, send: { conversationId: "d:a:b", clientMsgId: "x", ...extra } });

describe("JSON frames are parsed by the proto3 JSON mapping, strictly", () => {
  it("refuses a value of the wrong type, naming the field", () => {
    for (const text of [{ a: 1 }, 12345, ["x", "y"]]) {
      const e = refusal(send({ text }));
      expect(e.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      expect(e.message).toContain("chat.v1.Send.text");
    }
    const e = refusal({ ref: 2, createGroup: { title: "t", usernames: "bob" } });
    expect(e.message).toContain("chat.v1.CreateGroupRequest.usernames");
  });

  it("refuses numbers out of their range and strings that are not numbers", () => {
    for (const history of [{ fromSeq: -1 }, { limit: -5 }, { limit: "lots" }, { fromSeq: 1e30 }]) {
      const e = refusal({ ref: 3, history: { conversationId: "d:a:b", ...history } });
      expect(e.code, JSON.stringify(history)).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      expect(e.message).toMatch(/HistoryRequest\.(from_seq|limit)/);
    }
    for (const seq of [-1, "abc"]) expect(refusal({ ref: 4, ack: { conversationId: "d:a:b", seq, kind: "ACK_KIND_READ" } }).message).toContain("Ack.seq");
    expect(refusal({ ref: 5, sync: { afterPos: -3 } }).message).toContain("SyncRequest.after_pos");
    expect(refusal({ ref: 6, hello: { token: "t", deviceId: "d", cursor: "abc" } }).message).toContain("Hello.cursor");
  });

  it("refuses two actions in one frame and unknown keys as bad frames", () => {
    const two = refusal({ ref: 7, send: { conversationId: "d:a:b", clientMsgId: "x", text: "t" }, leave: { conversationId: "d:a:b" } });
    expect(two.code).toBe(ErrorCode.ERROR_CODE_INVALID_FRAME);
    expect(two.message).toContain("oneof");
    expect(refusal({ ref: 8, bogus: 1 }).code).toBe(ErrorCode.ERROR_CODE_INVALID_FRAME);
    expect(refusal([1, 2]).code).toBe(ErrorCode.ERROR_CODE_INVALID_FRAME);
  });

  it("accepts what the mapping allows: names in either case, 64-bit numbers as strings", () => {
    const f = json({ ref: "9", history: { conversation_id: "d:a:b", fromSeq: "12", limit: 5 } });
    expect(f.ref).toBe(9);
    expect(f.kind).toEqual({ $case: "history", value: expect.objectContaining({ conversationId: "d:a:b", fromSeq: 12, limit: 5 }) });
    const s = json(send({ text: "héllo 😀" }));
    expect(s.kind?.$case === "send" && s.kind.value.text).toBe("héllo 😀");
  });
});

describe("server frames", () => {
  const event = { pos: 7, atMs: 1, kind: { $case: "message" as const, value: { conversationId: "c", seq: 3, senderId: "a", senderDeviceId: "d", clientMsgId: "m", text: "😀".repeat(1_000), sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0 } } };
  const frame = () => ({ ref: 0, kind: { $case: "event" as const, value: event } });

  it("encodes one event once per subprotocol however many of the user's sessions it goes to", () => {
    const binary = encodeServerFrame(frame(), "proto");
    expect(encodeServerFrame(frame(), "proto")).toBe(binary);
    const json = encodeServerFrame(frame(), "json");
    expect(encodeServerFrame(frame(), "json")).toBe(json);
    expect(ServerFrame.decode(binary as Buffer)).toEqual(ServerFrame.fromJSON(JSON.parse(json as string)));
    // Another event (another position: another user's copy) is its own frame.
    const other = encodeServerFrame({ ref: 0, kind: { $case: "event", value: { ...event, pos: 8 } } }, "proto");
    expect(other).not.toBe(binary);
    expect(ServerFrame.decode(other as Buffer).kind).toMatchObject({ $case: "event", value: { pos: 8 } });
  });
});
