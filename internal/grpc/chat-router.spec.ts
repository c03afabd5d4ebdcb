import { credentials, Server, ServerCredentials, type Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceClient, ChatServiceService } from "../../gen/chat/internal/v1/chat.js";
import { ChatRouter, CONVERSATION_HEADER } from "./chat-router.js";
import { makeClient } from "./client.js";

/** A chat server on a free loopback port that records the header of every call it gets. */
let server: Server;
let port = 0;
const seen: Array<{ method: string; conversation: unknown }> = [];
const record = (method: string) => (call: { metadata: Metadata }, cb: (err: null, res: object) => void) => {
  seen.push({ method, conversation: call.metadata.get(CONVERSATION_HEADER)[0] });
  cb(null, {});
};

beforeAll(async () => {
  server = new Server();
  server.addService(ChatServiceService, {
    send: record("send"), ack: record("ack"), openDirect: record("openDirect"), createGroup: record("createGroup"),
    addMember: record("addMember"), removeMember: record("removeMember"), setMuted: record("setMuted"),
  });
  port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
});
afterAll(() => { server.forceShutdown(); });

describe("ChatRouter", () => {
  it("puts the conversation header on every call it routes (sidecars hash on it to reach the owner)", async () => {
    const fallback = makeClient(ChatServiceClient, [`127.0.0.1:${port}`], credentials.createInsecure());
    const router = new ChatRouter(undefined, credentials.createInsecure(), undefined, fallback);
    await router.call("c-1", (c) => c.send, { actor: undefined, send: undefined });
    await router.call("c-2", (c) => c.setMuted, { actor: undefined, conversationId: "c-2", muted: true });
    await router.call("c-3", (c) => c.addMember, { actor: undefined, conversationId: "c-3", username: "x" });
    expect(seen).toEqual([
      { method: "send", conversation: "c-1" },
      { method: "setMuted", conversation: "c-2" },
      { method: "addMember", conversation: "c-3" },
    ]);
    fallback.close();
  });
});
