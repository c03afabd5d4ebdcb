import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ChatServiceClient, ChatServiceService, type SendRequest, type SendResponse } from "../../gen/chat/internal/v1/chat.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { Logger } from "../log/logger.js";
import { waitFor } from "../../test/support/wait.js";
import { call, makeClient } from "./client.js";
import { implement, type AsyncService } from "./handler.js";
import { multiplex, MultiplexClient, type MultiplexableMethod, MULTIPLEX_MAX_CALL_BYTES } from "./multiplex-client.js";
import type { MultiplexServer } from "./multiplex-server.js";
import { startGrpcServer } from "./server.js";

const log = new Logger("test", "error");
const sendOf = (text: string): SendRequest => ({ actor: { userId: "u", deviceId: "d" }, send: { conversationId: "c", clientMsgId: text, text, replyToSeq: 0, firstSend: false } });
const sent = (clientMsgId: string, seq: number): SendResponse => ({ sent: { conversationId: "c", clientMsgId, seq, sentAtMs: 0, duplicate: false } });

type Handlers = Pick<AsyncService<typeof ChatServiceService>, "send" | "ack">;
/** Every other method of ChatService: never called here. */
const unused = new Proxy({}, { get: () => async () => { throw new Error("not called in this test"); } });

const cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

/** A ChatService on a loopback port served through implement(), and a client whose calls go on its Multiplex stream. */
async function serveChat(handlers: Handlers, port = 0) {
  const multiplexes: MultiplexServer[] = [];
  const impl = Object.assign(Object.create(unused), handlers) as AsyncService<typeof ChatServiceService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port, credentials: ServerCredentials.createInsecure(), services: [{ definition: ChatServiceService, implementation: implement(ChatServiceService, impl, log, undefined, multiplexes) }], multiplexes });
  cleanups.push(() => server.server.forceShutdown());
  return { server, streams: multiplexes[0]! };
}

function clientOf(port: number) {
  const client = makeClient(ChatServiceClient, [`127.0.0.1:${port}`], credentials.createInsecure());
  multiplex(client);
  cleanups.push(() => client.close());
  return { client, send: (text: string, timeoutMs = 5_000) => call(client, client.send, sendOf(text), timeoutMs) };
}

/** A promise with its resolve, for holding a handler until the test lets it go. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => { open = r; });
  return { p, open };
}

const noAck = { ack: async () => ({ deliveredSeq: 0, readSeq: 0 }) };

describe("unary calls on a Multiplex stream", () => {
  it("answers each call by its id, in whatever order the handlers finish, all on one stream", async () => {
    const gates = new Map<string, ReturnType<typeof gate>>();
    const peers = new Set<string>();
    const { server } = await serveChat({
      ...noAck,
      send: async (req, c) => {
        peers.add(String((c as { getPeer(): string }).getPeer()));
        const g = gate();
        gates.set(req.send!.text, g);
        await g.p;
        return sent(req.send!.text, Number(req.send!.text.slice(1)));
      },
    });
    const { send } = clientOf(server.port);
    const calls = ["m1", "m2", "m3"].map((t) => send(t));
    await waitFor("all three at the server", () => gates.size === 3);
    for (const t of ["m3", "m1", "m2"]) gates.get(t)!.open();
    const answers = await Promise.all(calls);
    expect(answers.map((a) => [a.sent!.clientMsgId, a.sent!.seq])).toEqual([["m1", 1], ["m2", 2], ["m3", 3]]);
    expect(peers.size).toBe(1);
  });

  it("carries the handler's domain error with its code and retry hint, hides an internal one; the stream goes on", async () => {
    const { server } = await serveChat({
      ...noAck,
      send: async (req) => {
        if (req.send!.text === "bad") throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too fast", { retryAfterMs: 1234 });
        if (req.send!.text === "bug") throw new Error("a database said something internal");
        return sent("ok", 7);
      },
    });
    const { send } = clientOf(server.port);
    const refused = (await send("bad").catch((e: unknown) => e)) as ChatError;
    expect(refused).toBeInstanceOf(ChatError);
    expect([refused.code, refused.message, refused.retryAfterMs]).toEqual([ErrorCode.ERROR_CODE_RATE_LIMITED, "sending too fast", 1234]);
    const internal = (await send("bug").catch((e: unknown) => e)) as ChatError;
    expect([internal.code, internal.message]).toEqual([ErrorCode.ERROR_CODE_INTERNAL, "internal error"]);
    expect((await send("fine")).sent!.seq).toBe(7);
  });

  it("fails an unanswered call UNAVAILABLE at its deadline, and drops the late answer", async () => {
    const g = gate();
    const { server } = await serveChat({ ...noAck, send: async () => { await g.p; return sent("late", 1); } });
    const { client, send } = clientOf(server.port);
    const err = (await send("slow", 150).catch((e: unknown) => e)) as ChatError;
    expect(err.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    g.open();
    expect((await call(client, client.ack, { actor: undefined, ack: undefined })).deliveredSeq).toBe(0);
  });

  it("takes a stream that answered nothing since a call went out for dead at that call's deadline: its other calls fail at once, the next opens a new stream", async () => {
    const frozen = gate();
    let arrived = 0;
    // A peer that keeps its connection and answers nothing (a frozen process), until it is let go.
    const { server } = await serveChat({ ...noAck, send: async (req) => { arrived++; if (arrived <= 2) await frozen.p; return sent(req.send!.text, arrived); } });
    const { send } = clientOf(server.port);
    const patient = send("patient", 60_000).catch((e: unknown) => e);
    await waitFor("the first call at the server", () => arrived === 1);
    const started = Date.now();
    const hasty = (await send("hasty", 200).catch((e: unknown) => e)) as ChatError;
    expect(hasty.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    // Failed with the stream, not at its own 60 s deadline.
    expect(((await patient) as ChatError).code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await send("next")).sent!.seq).toBe(3);
    frozen.open();
  });

  it("keeps a stream whose peer answers other calls while one is slow", async () => {
    const slow = gate();
    const { server } = await serveChat({ ...noAck, send: async (req) => { if (req.send!.text === "slow") await slow.p; return sent(req.send!.text, 7); } });
    const { send } = clientOf(server.port);
    const patient = send("slow", 60_000);
    const hasty = send("slow", 300).catch((e: unknown) => e);
    // Answers keep coming on the stream while the slow calls wait.
    const fast = (async () => { for (let i = 0; i < 20; i++) await send(`fast${i}`); })();
    expect(((await hasty) as ChatError).code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    await fast;
    slow.open();
    expect((await patient).sent!.seq).toBe(7);
  });

  it("fails every unanswered call UNAVAILABLE when the server goes, and opens a new stream for the next call", async () => {
    const g = gate();
    let arrived = 0;
    const first = await serveChat({ ...noAck, send: async () => { arrived++; await g.p; return sent("never", 1); } });
    const { send } = clientOf(first.server.port);
    const inFlight = [1, 2].map((i) => send(`m${i}`, 30_000).catch((e: unknown) => e));
    await waitFor("both calls at the server", () => arrived === 2);
    first.server.server.forceShutdown();
    for (const e of await Promise.all(inFlight)) expect((e as ChatError).code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    await serveChat({ ...noAck, send: async () => sent("x", 9) }, first.server.port);
    let seq = 0;
    await waitFor("a call through a new stream", async () => {
      seq = (await send("x", 2_000).catch(() => sent("x", 0))).sent!.seq;
      return seq === 9;
    });
  });

  it("drains: answers what it holds, refuses new calls UNAVAILABLE before running them, then ends the stream", async () => {
    const g = gate();
    const ran: string[] = [];
    const { server, streams } = await serveChat({
      ...noAck,
      send: async (req) => {
        ran.push(req.send!.text);
        if (req.send!.text === "held") await g.p;
        return sent(req.send!.text, 1);
      },
    });
    const { send } = clientOf(server.port);
    const held = send("held", 30_000);
    await waitFor("the held call runs", () => ran.includes("held"));
    const drained = streams.drain();
    const late = (await send("late", 30_000).catch((e: unknown) => e)) as ChatError;
    expect(late.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(ran).toEqual(["held"]);
    g.open();
    expect((await held).sent!.clientMsgId).toBe("held");
    await drained;
  });

  it("keeps as many streams as asked on a balanced channel and sends its calls on them in turn, each opened again when it ends", async () => {
    const calls: string[] = [];
    const { server } = await serveChat({ ...noAck, send: async (req) => { calls.push(req.send!.text); return sent(req.send!.text, calls.length); } });
    const client = makeClient(ChatServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
    cleanups.push(() => client.close());
    const opened: Array<ReturnType<typeof client.multiplex>> = [];
    const streams = new MultiplexClient(() => { const s = client.multiplex(); opened.push(s); return s; }, new Set(), 3);
    cleanups.push(() => streams.close());
    const send = (text: string) => streams.call(client.send as unknown as MultiplexableMethod<SendRequest, SendResponse>, sendOf(text), 5_000)!;
    for (let i = 1; i <= 6; i++) expect((await send(`s${i}`)).sent!.seq).toBe(i);
    expect(opened).toHaveLength(3);
    // The second stream ends (its instance went away): the next call on its turn opens a new one; the others stay.
    opened[1]!.cancel();
    await waitFor("the ended stream to be noticed", async () => (await send("probe").then(() => true, () => false)) && opened.length === 4);
    expect(opened.slice(0, 3).map((s) => s.closed || s.destroyed)).toEqual([false, true, false]);
  });

  it("sends a large request, and a method named unary, as unary calls: a large message on the stream would hold back the small ones behind it", async () => {
    const how: string[] = [];
    const viaStream = (c: unknown) => ("request" in (c as object) ? "unary" : "stream");
    const { server } = await serveChat({
      ack: async (_req, c) => { how.push(`ack ${viaStream(c)}`); return { deliveredSeq: 0, readSeq: 0 }; },
      send: async (req, c) => { how.push(`${req.send!.text.length} ${viaStream(c)}`); return sent("x", 1); },
    });
    const { client, send } = clientOf(server.port);
    await send("small");
    await send("y".repeat(MULTIPLEX_MAX_CALL_BYTES + 1));
    await call(client, client.ack, { actor: undefined, ack: undefined });
    const paged = makeClient(ChatServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
    multiplex(paged, { unaryMethods: ["Ack"] });
    cleanups.push(() => paged.close());
    await call(paged, paged.ack, { actor: undefined, ack: undefined });
    expect(how).toEqual(["5 stream", `${MULTIPLEX_MAX_CALL_BYTES + 1} unary`, "ack stream", "ack unary"]);
  });

  it("checks each call against the caller policy of its unary method", async () => {
    // Without mTLS there is no identity: a policy then refuses every call, on the stream as in a unary call.
    const multiplexes: MultiplexServer[] = [];
    const impl = Object.assign(Object.create(unused), { ...noAck, send: async () => sent("x", 1) }) as AsyncService<typeof ChatServiceService>;
    const server = await startGrpcServer({ host: "127.0.0.1", port: 0, credentials: ServerCredentials.createInsecure(), services: [{ definition: ChatServiceService, implementation: implement(ChatServiceService, impl, log, { edge: ["ChatService/Send", "ChatService/Multiplex"] }, multiplexes) }], multiplexes });
    cleanups.push(() => server.server.forceShutdown());
    const { send } = clientOf(server.port);
    expect(((await send("x").catch((e: unknown) => e)) as ChatError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
  });
});
