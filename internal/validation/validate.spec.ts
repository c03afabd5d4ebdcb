import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { codePointLength, validateSend, validateTitle } from "./validate.js";

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

  it("refuses control characters other than tab, line feed and carriage return, naming where", () => {
    for (const text of ["x\u0000y", "\u0007bell", "esc \u001b[31m", "del\u007f"]) {
      const e = (() => { try { validateSend({ conversationId: conv, clientMsgId: "a", text }, 100); } catch (err) { return err as ChatError; } return undefined; })();
      expect(e?.code, JSON.stringify(text)).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      expect(e?.message).toMatch(/control character U\+00[0-9A-F]{2} at position \d+/);
    }
    expect(() => validateSend({ conversationId: conv, clientMsgId: "a", text: "tab\there\r\nnew line 😀" }, 100)).not.toThrow();
    expect(() => validateTitle("a\u0000b")).toThrow(ChatError);
    expect(() => validateTitle("trip 2027")).not.toThrow();
  });
});
