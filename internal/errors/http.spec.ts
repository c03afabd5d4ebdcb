import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "./chat-error.js";
import { fromServiceError } from "./grpc-status.js";
import { httpStatusOf, publicMessage } from "./http.js";
import { Metadata, status } from "@grpc/grpc-js";

describe("HTTP mapping", () => {
  it("gives every domain code a status", () => {
    for (const code of Object.values(ErrorCode).filter((v): v is ErrorCode => typeof v === "number")) {
      expect(httpStatusOf(code)).toBeGreaterThanOrEqual(400);
    }
    expect(httpStatusOf(ErrorCode.ERROR_CODE_RATE_LIMITED)).toBe(429);
  });

  it("never shows grpc-js's texts (internal addresses) for UNAVAILABLE or INTERNAL", () => {
    const bare = fromServiceError({ code: status.UNAVAILABLE, details: "No connection established. Last error: connect ECONNREFUSED 10.0.3.7:7201 (remote_addr=10.0.3.7:7201)", metadata: new Metadata(), message: "", name: "" } as never);
    expect(publicMessage(bare)).not.toMatch(/10\.0|ECONN|remote_addr/);
    expect(publicMessage(new ChatError(ErrorCode.ERROR_CODE_INTERNAL, "pg: relation users at 10.1.1.1"))).toBe("internal error");
    expect(publicMessage(ChatError.invalid("username must be 3-32 characters"))).toBe("username must be 3-32 characters");
  });
});
