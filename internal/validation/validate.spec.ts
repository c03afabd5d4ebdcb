import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { codePointLength, validateSend } from "./validate.js";

const conv = "g:00000000-0000-0000-0000-000000000000";

describe("validation", () => {
  it("counts code points, not UTF-16 units", () => {
    expect(codePointLength("abc")).toBe(3);
    expect(codePointLength("😀😀")).toBe(2);
    expect(codePointLength("\ud800x")).toBe(2); // a lone surrogate is one unit
  });

  it("accepts the limit and refuses one more with MESSAGE_TOO_LONG", () => {
    expect(() => validateSend({ conversationId: conv, clientMsgId: "a", text: "😀".repeat(10) }, 10)).not.toThrow();
    try {
      validateSend({ conversationId: conv, clientMsgId: "a", text: "😀".repeat(11) }, 10);
      expect.unreachable();
    } catch (e) {
      expect((e as ChatError).code).toBe(ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG);
    }
  });

  it("refuses malformed ids and empty text", () => {
    for (const bad of [{ conversationId: "x", clientMsgId: "a", text: "t" }, { conversationId: conv, clientMsgId: "", text: "t" }, { conversationId: conv, clientMsgId: "a b", text: "t" }, { conversationId: conv, clientMsgId: "a", text: "" }]) {
      expect(() => validateSend(bad, 10)).toThrow(ChatError);
    }
  });
});
