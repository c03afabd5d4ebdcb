import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ChatServiceClient, ChatServiceService, type SendRequest } from "../../gen/chat/internal/v1/chat.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { Logger } from "../log/logger.js";
import { waitFor } from "../../test/support/wait.js";
import { makeClient } from "./client.js";
import { implement, type AsyncService } from "./handler.js";
import { MultiplexClient } from "./multiplex-client.js";
import { MultiplexServer, type MultiplexedMethods } from "./multiplex-server.js";
import { startGrpcServer, type RunningGrpcServer } from "./server.js";

const log = new Logger("test", "error");
const sendOf = (text: string, conversationId = "c"): SendRequest => ({ actor: { userId: "u", deviceId: "d" }, send: { conversationId, clientMsgId: text, text, replyToSeq: 0 } });

/** A chat server whose only working methods are the multiplexed ones, and a stream client to it. */
async function setup(methods: MultiplexedMethods) {
  const streams = new MultiplexServer(methods);
  const impl = { multiplex: streams.handler } as unknown as AsyncService<typeof ChatServiceService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, credentials: ServerCredentials.createInsecure(), services: [{ definition: ChatServiceService, implementation: implement(ChatServiceService, impl, log) }] });
  const client = makeClient(ChatServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
  const mux = new MultiplexClient(client);
  cleanups.push(() => { mux.close(); client.close(); server.server.forceShutdown(); });
  return { streams, server, client, mux };
}

const cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

const noAck = { ack: async () => ({ deliveredSeq: 0, readSeq: 0 }), typing: async () => ({}) };

/** A promise with its resolve, for holding a handler until the test lets it go. */
function gate<T = void>() {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => { open = r; });
  return { p, open };
}

describe("Multiplex stream", () => {
  it("answers each call by its id, in whatever order the handlers finish", async () => {
    const gates = new Map<string, ReturnType<typeof gate>>();
    const { mux } = await setup({
      ...noAck,
      send: async (req) => {
        const g = gate();
        gates.set(req.send!.text, g);
        await g.p;
        return { sent: { conversationId: "c", clientMsgId: req.send!.text, seq: Number(req.send!.text.slice(1)), sentAtMs: 0, pos: 0 } };
      },
    });
    const calls = ["m1", "m2", "m3"].map((t) => mux.call("send", sendOf(t), 5_000));
    await waitFor("all three at the server", () => gates.size === 3);
    for (const t of ["m3", "m1", "m2"]) gates.get(t)!.open();
    const answers = await Promise.all(calls);
    expect(answers.map((a) => [a.sent!.clientMsgId, a.sent!.seq])).toEqual([["m1", 1], ["m2", 2], ["m3", 3]]);
  });

  it("carries the handler's domain error with its code and retry hint; the stream goes on", async () => {
    const { mux } = await setup({
      ...noAck,
      send: async (req) => {
        if (req.send!.text === "bad") throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too fast", { retryAfterMs: 1234 });
        if (req.send!.text === "bug") throw new Error("a database said something internal");
        return { sent: { conversationId: "c", clientMsgId: "ok", seq: 7, sentAtMs: 0, pos: 0 } };
      },
    });
    const refused = (await mux.call("send", sendOf("bad"), 5_000).catch((e: unknown) => e)) as ChatError;
    expect(refused).toBeInstanceOf(ChatError);
    expect([refused.code, refused.message, refused.retryAfterMs]).toEqual([ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too fast", 1234]);
    const internal = (await mux.call("send", sendOf("bug"), 5_000).catch((e: unknown) => e)) as ChatError;
    expect([internal.code, internal.message]).toEqual([ErrorCode.ERROR_CODE_INTERNAL, "internal error"]);
    expect((await mux.call("send", sendOf("fine"), 5_000)).sent!.seq).toBe(7);
  });

  it("fails an unanswered call UNAVAILABLE at its deadline, and ignores the late answer", async () => {
    const g = gate();
    const { mux } = await setup({ ...noAck, send: async () => { await g.p; return { sent: undefined }; } });
    const err = (await mux.call("send", sendOf("slow"), 150).catch((e: unknown) => e)) as ChatError;
    expect(err.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    g.open();
    // The stream still works after the late answer arrived and was dropped.
    const { deliveredSeq } = await mux.call("ack", { actor: { userId: "u", deviceId: "d" }, ack: undefined }, 5_000);
    expect(deliveredSeq).toBe(0);
  });

  it("fails every unanswered call UNAVAILABLE when the server goes, and opens a new stream for the next call", async () => {
    const g = gate();
    let arrived = 0;
    const first = await setup({ ...noAck, send: async () => { arrived++; await g.p; return { sent: undefined }; } });
    const inFlight = [1, 2].map((i) => first.mux.call("send", sendOf(`m${i}`), 30_000).catch((e: unknown) => e));
    await waitFor("both calls at the server", () => arrived === 2);
    first.server.server.forceShutdown();
    for (const e of await Promise.all(inFlight)) expect((e as ChatError).code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    // A new server on the same port: the same client reconnects with a new stream.
    const again = await startGrpcServer({ host: "127.0.0.1", port: first.server.port, credentials: ServerCredentials.createInsecure(), services: [{ definition: ChatServiceService, implementation: implement(ChatServiceService, { multiplex: new MultiplexServer({ ...noAck, send: async () => ({ sent: { conversationId: "c", clientMsgId: "x", seq: 9, sentAtMs: 0, pos: 0 } }) }).handler } as unknown as AsyncService<typeof ChatServiceService>, log) }] });
    cleanups.push(() => again.server.forceShutdown());
    let seq = 0;
    await waitFor("a call through a new stream", async () => {
      seq = (await first.mux.call("send", sendOf("x"), 2_000).catch(() => ({ sent: { seq: 0 } }))).sent!.seq;
      return seq === 9;
    });
  });

  it("drains: answers what it holds, refuses new calls UNAVAILABLE before running them, then ends the stream", async () => {
    const g = gate();
    const ran: string[] = [];
    const { mux, streams } = await setup({
      ...noAck,
      send: async (req) => {
        ran.push(req.send!.text);
        if (req.send!.text === "held") await g.p;
        return { sent: { conversationId: "c", clientMsgId: req.send!.text, seq: 1, sentAtMs: 0, pos: 0 } };
      },
    });
    const held = mux.call("send", sendOf("held"), 30_000);
    await waitFor("the held call runs", () => ran.includes("held"));
    const drained = streams.drain();
    const late = (await mux.call("send", sendOf("late"), 30_000).catch((e: unknown) => e)) as ChatError;
    expect(late.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(ran).toEqual(["held"]);
    g.open();
    expect((await held).sent!.clientMsgId).toBe("held");
    await drained;
  });
});
