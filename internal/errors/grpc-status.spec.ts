import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "./chat-error.js";
import { fromServiceError, toServiceError } from "./grpc-status.js";

describe("error mapping", () => {
  it("round-trips every domain code through a gRPC status", () => {
    for (const code of Object.values(ErrorCode).filter((v): v is ErrorCode => typeof v === "number" && v > 0)) {
      const se = toServiceError(new ChatError(code, "m", { retryAfterMs: 7 }));
      const back = fromServiceError({ ...se, message: "m", name: "Error" } as never);
      expect(back.code).toBe(code);
    }
  });

  it("hides the cause of INTERNAL errors and maps infra failures to UNAVAILABLE", () => {
    expect(toServiceError(new Error("secret detail")).details).toBe("internal error");
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    expect(toServiceError(refused).code).toBe(status.UNAVAILABLE);
    const pg = Object.assign(new Error("terminating connection"), { code: "57P01" });
    expect(fromServiceError({ ...toServiceError(pg), message: "", name: "" } as never).retryable).toBe(true);
  });

  it("keeps grpc-js's own texts (addresses, internals) out of the message, in the cause for logs", () => {
    for (const [code, details] of [
      [status.DEADLINE_EXCEEDED, "Deadline exceeded after 5.0s,remote_addr=127.0.0.1:37201"],
      [status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 10.0.3.7:7401"],
      [status.RESOURCE_EXHAUSTED, "Attempted to send message with a size larger than 67108864"],
      [status.INTERNAL, "Received RST_STREAM with code 2 triggered by internal client error: Protocol error"],
    ] as const) {
      const err = { code, details, metadata: new Metadata(), message: `${code} ${details}`, name: "Error" };
      const e = fromServiceError(err as never);
      expect(e.message).not.toMatch(/\d+\.\d+\.\d+\.\d+|remote_addr|ECONNREFUSED|67108864|RST_STREAM/);
      expect(e.cause).toBe(err);
    }
  });

  it("treats a bare UNAVAILABLE (peer down) as retryable", () => {
    const e = fromServiceError({ code: status.UNAVAILABLE, details: "No connection established", metadata: new Metadata(), message: "", name: "" } as never);
    expect(e.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(e.retryable).toBe(true);
  });
});
