import { describe, expect, it } from "vitest";
import { ErrorCode, PushProvider } from "../../gen/chat/v1/client.js";
import type { ChatError } from "../errors/chat-error.js";
import type { PushDispatcher } from "./dispatcher.js";
import { notifierService } from "./grpc-service.js";
import { MemoryTokenStore } from "./token-store-memory.js";

describe("push token registration", () => {
  const svc = () => {
    const tokens = new MemoryTokenStore();
    return { tokens, api: notifierService(tokens, {} as PushDispatcher, new Set(["webhook"]), { maxDevicesPerUser: 3, maxTokenBytes: 64 }) };
  };
  const register = (api: ReturnType<typeof svc>["api"], deviceId: string, token: string) =>
    api.registerToken({ userId: "u1", deviceId, provider: PushProvider.PUSH_PROVIDER_WEBHOOK, token }, {} as never);

  it("bounds the devices of one user that receive pushes; a device registering again does not count twice", async () => {
    const { tokens, api } = svc();
    for (const d of ["a", "b", "c"]) await register(api, d, `t-${d}`);
    await register(api, "b", "t-b2");
    const refused = (await register(api, "d", "t-d").catch((e) => e)) as ChatError;
    expect(refused.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(refused.message).toMatch(/at most 3 devices/);
    expect((await tokens.listForUser("u1")).map((t) => t.token).sort()).toEqual(["t-a", "t-b2", "t-c"]);
  });

  it("refuses a token over the size limit", async () => {
    const { tokens, api } = svc();
    expect(((await register(api, "a", "x".repeat(65)).catch((e) => e)) as ChatError).code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(await tokens.listForUser("u1")).toEqual([]);
  });
});
