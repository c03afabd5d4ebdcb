import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "./chat-error.js";
import { CLOSE, closeCodeOf, closeIsFinal } from "./close-codes.js";

describe("ChatError.from", () => {
  it("classifies an infrastructure failure as the gRPC path does: retryable UNAVAILABLE, not INTERNAL", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:5432"), { code: "ECONNREFUSED" });
    expect(ChatError.from(refused)).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
    expect(ChatError.from(new TypeError("a bug"))).toMatchObject({ code: ErrorCode.ERROR_CODE_INTERNAL, retryable: false });
    const typed = ChatError.invalid("no");
    expect(ChatError.from(typed)).toBe(typed);
  });
});

describe("close codes", () => {
  it("end a refused token or session and a device in use for good, anything else for a retry", () => {
    expect(closeCodeOf(ErrorCode.ERROR_CODE_UNAUTHENTICATED)).toBe(CLOSE.unauthenticated);
    expect(closeCodeOf(ErrorCode.ERROR_CODE_SESSION_ENDED)).toBe(CLOSE.unauthenticated);
    expect(closeCodeOf(ErrorCode.ERROR_CODE_DEVICE_IN_USE)).toBe(CLOSE.deviceInUse);
    expect(closeCodeOf(ErrorCode.ERROR_CODE_QUOTA_EXCEEDED)).toBe(CLOSE.quotaExceeded);
    expect(closeCodeOf(ErrorCode.ERROR_CODE_UNAVAILABLE)).toBe(CLOSE.retryLater);
    expect([CLOSE.unauthenticated, CLOSE.deviceInUse, CLOSE.quotaExceeded, CLOSE.retryLater, CLOSE.shutdown].map(closeIsFinal)).toEqual([true, true, true, false, false]);
  });
});
