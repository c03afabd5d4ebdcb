import { describe, expect, it } from "vitest";
import { ErrorCode, PushProvider } from "../../gen/chat/v1/client.js";
import type { ChatError } from "../errors/chat-error.js";
import type { Notification, PushDispatcher } from "./dispatcher.js";
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

describe("messages and activity from chat", () => {
  it("NotifyBatch notifies each recipient but the sender, leaving out their devices with a live session; Activity reports uses and reads", async () => {
    const calls: unknown[] = [];
    const dispatcher = {
      notify: async (n: Notification) => { calls.push(["notify", n.userId, n.seq, n.excludeDeviceIds]); },
      active: (userId: string) => { calls.push(["active", userId]); },
      read: (userId: string, conversationId: string, readSeq: number) => { calls.push(["read", userId, conversationId, readSeq]); },
    } as unknown as PushDispatcher;
    const api = notifierService(new MemoryTokenStore(), dispatcher, new Set(["webhook"]));
    const message = { conversationId: "c", seq: 4, senderId: "alice", senderDeviceId: "laptop", clientMsgId: "m", text: "hi", sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0 };
    await api.notifyBatch({ notifications: [{ message, senderName: "alice", conversationTitle: "", recipients: [
      { userId: "alice", muted: false, onlineDeviceIds: ["laptop"] },
      { userId: "bob", muted: false, onlineDeviceIds: ["bob-desktop"] },
    ] }], activity: undefined }, {} as never);
    await api.activity({ activeUserIds: ["carol"], reads: [{ userId: "bob", conversationId: "c", readSeq: 4 }] }, {} as never);
    expect(calls).toEqual([["notify", "bob", 4, ["bob-desktop"]], ["active", "carol"], ["read", "bob", "c", 4]]);
    // The uses and reads of the same window ride with the messages, and are applied first.
    calls.length = 0;
    await api.notifyBatch({ notifications: [{ message: { ...message, seq: 5 }, senderName: "alice", conversationTitle: "", recipients: [{ userId: "bob", muted: false, onlineDeviceIds: [] }] }],
      activity: { activeUserIds: ["bob"], reads: [{ userId: "bob", conversationId: "c", readSeq: 5 }] } }, {} as never);
    expect(calls).toEqual([["active", "bob"], ["read", "bob", "c", 5], ["notify", "bob", 5, []]]);
  });
});
