import { describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { ErrorCode, type Event, ServerFrame } from "../../gen/chat/v1/client.js";
import { waitFor } from "../../test/support/wait.js";
import { ChatError } from "../errors/chat-error.js";
import { Logger } from "../log/logger.js";
import type { MeshGateway } from "./mesh-gateway.js";
import { Session, type SessionConfig } from "./session.js";

const MAX_BUFFERED = 1024 * 1024;
const CONFIG: SessionConfig = {
  helloTimeoutMs: 10_000, heartbeatIntervalMs: 15_000, sendRate: 50, sendBurst: 200, frameRate: 200, frameBurst: 1_000, sendBytesPerS: 256 << 10, sendBytesBurst: 2 << 20, maxQueuedFrames: 64, maxQueuedBytes: 4 << 20,
  maxBufferedBytes: MAX_BUFFERED, maxTextLength: 100_000, syncPageSize: 1_000, headCheckIntervalMs: 0, maxPresenceSubscriptions: 200,
  typingThrottleMs: 2_000, typingExpiryMs: 6_000,
};

/**
 * A WebSocket whose send buffer empties only as fast as the test's device
 * reads: bufferedAmount and write callbacks behave as ws's do over a socket.
 */
class SlowSocket {
  bufferedAmount = 0;
  maxBuffered = 0;
  closed: string | undefined;
  readonly received: ServerFrame[] = [];
  private readonly queue: Array<{ data: Buffer; cb?: () => void }> = [];

  send(data: Buffer | string, cb?: () => void): void {
    const buf = Buffer.from(data);
    this.bufferedAmount += buf.length;
    this.maxBuffered = Math.max(this.maxBuffered, this.bufferedAmount);
    this.queue.push({ data: buf, cb });
  }
  close(code: number, reason: string): void { this.closed = `${code} ${reason}`; }
  terminate(): void { this.closed ??= "terminated"; }

  /** The device takes one frame off the wire. */
  readOne(): boolean {
    const f = this.queue.shift();
    if (!f) return false;
    this.bufferedAmount -= f.data.length;
    this.received.push(ServerFrame.decode(f.data));
    f.cb?.();
    return true;
  }
}

const big = (pos: number): Event => ({
  pos,
  atMs: 1,
  kind: { $case: "message", value: { conversationId: "c", seq: pos, senderId: "a", senderDeviceId: "d", clientMsgId: `m${pos}`, text: `${pos}`.padEnd(90_000, "x"), sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0 } },
});

describe("Session catch-up", () => {
  it("streams a backlog larger than the send buffer at the device's pace, across pages cut short by bytes, and ends with Synced at the head", async () => {
    const { ws, session, log } = await connect(60); // 5.4 MB, five times the send buffer
    await readUntil(ws, () => synced(ws));
    const events = positions(ws);
    expect({ closed: ws.closed, synced: synced(ws), events: events.length }).toEqual({ closed: undefined, synced: true, events: 60 });
    expect(events).toEqual(log.map((e) => e.pos));
    expect(ws.received.find((f) => f.kind?.$case === "synced")?.kind).toEqual({ $case: "synced", value: { pos: 60 } });
    // Never more than the bound (a quarter of it plus one frame, in fact).
    expect(ws.maxBuffered).toBeLessThanOrEqual(MAX_BUFFERED);
    session.close(1000, "done");
  });

  it("holds live events within the buffer's bytes during a catch-up, reads dropped ones from the store, and the device sees every position once", async () => {
    const { ws, session, log } = await connect(40);
    // Thirty large messages arrive live while the backlog streams (stored first, as chat does): more than the held bound.
    await readUntil(ws, () => positions(ws).length >= 5);
    for (let pos = 41; pos <= 70; pos++) {
      log.push(big(pos));
      session.deliver(big(pos));
    }
    await readUntil(ws, () => positions(ws).length >= 70 && synced(ws));
    expect({ closed: ws.closed, synced: synced(ws) }).toEqual({ closed: undefined, synced: true });
    expect(positions(ws)).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
    expect(ws.maxBuffered).toBeLessThanOrEqual(MAX_BUFFERED);
    session.close(1000, "done");
  });
});

const synced = (ws: SlowSocket) => ws.received.some((f) => f.kind?.$case === "synced");
const positions = (ws: SlowSocket) => ws.received.flatMap((f) => (f.kind?.$case === "event" ? [f.kind.value.pos] : []));

/** A session over a SlowSocket, said Hello, catching up a log of `n` large messages from a store that cuts pages at 20 events. */
async function connect(n: number): Promise<{ ws: SlowSocket; session: Session; log: Event[] }> {
  const log = Array.from({ length: n }, (_, i) => big(i + 1));
  const backends = {
    tokens: { verify: async () => ({ userId: "u", username: "u", sessionId: "s", expiresAtMs: Date.now() + 60_000 }) },
    liveness: { isLive: async () => true },
    presenceConnect: async () => ({ replaced: undefined }),
    kick: () => {},
    userOnline: () => {},
    // A store page cut by bytes: 20 events (1.8 MB) of the 1,000 asked for, with `more` set.
    readLog: async (_user: string, after: number) => {
      const events = log.filter((e) => e.pos > after).slice(0, 20);
      return { events, head: log.length, more: events.length === 20 };
    },
    logHead: async () => log.length,
  } as unknown as MeshGateway;
  const ws = new SlowSocket();
  const session = new Session(ws as unknown as WebSocket, "proto", backends, CONFIG, {
    register: () => {}, unregister: () => {}, route: () => ({}) as Route, disconnected: async () => {}, admitSend: async () => {}, deleteAccount: async () => [], endSessions: () => {},
  }, new Logger("test", "error"));
  await session.handle({ ref: 1, traceparent: "", kind: { $case: "hello", value: { token: "t", deviceId: "d1", cursor: 0, takeover: false } } });
  return { ws, session, log };
}

/** The device reads a frame whenever one is there, yielding between reads, until `done`, a close, or a generous deadline. */
async function readUntil(ws: SlowSocket, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!done() && !ws.closed && Date.now() < deadline) {
    if (!ws.readOne()) await new Promise((r) => setImmediate(r));
  }
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("Session", () => {
  it("a socket that closes while Hello awaits presence is not registered, and presence is told it left", async () => {
    const connect = deferred<{ replaced?: Route }>();
    const connectCalled = deferred<void>();
    const ws = { bufferedAmount: 0, send: () => {}, close: () => {}, terminate: () => {} } as unknown as WebSocket;
    const backends = {
      tokens: { verify: async () => ({ userId: "u1", username: "alice", sessionId: "s1", expiresAtMs: Date.now() + 60_000 }) },
      liveness: { isLive: async () => true },
      presenceConnect: () => { connectCalled.resolve(); return connect.promise; },
      kick: async () => {},
      userOnline: () => {},
      readLog: async () => ({ events: [], head: 0 }),
      logHead: async () => 0,
    } as unknown as MeshGateway;
    const registered = new Set<Session>();
    let unregistered = 0;
    const session = new Session(ws, "proto", backends, CONFIG, {
      register: (s) => registered.add(s),
      unregister: (s) => { registered.delete(s); unregistered++; },
      route: (s) => ({ userId: s.userId, deviceId: s.deviceId, sessionId: s.sessionId, edgeId: "e1", edgeAddress: "e1:1" }),
      disconnected: async () => {},
      admitSend: async () => {}, deleteAccount: async () => [], endSessions: () => {},
    }, new Logger("test"));

    const handled = session.handle({ ref: 1, traceparent: "", kind: { $case: "hello", value: { token: "t", deviceId: "phone", cursor: 0, takeover: false } } });
    await connectCalled.promise;
    session.onClosed(); // the socket is gone while presence registers the device
    connect.resolve({});
    await handled;

    expect(registered.size).toBe(0);
    expect(session.isAuthenticated).toBe(false);
    // Presence recorded the device: the edge must disconnect it (unregister does), or it stays for ever.
    expect(unregistered).toBe(1);
  });
});

describe("Session sends", () => {
  it("answers a send refused for its bytes at once, even behind a slow send of the same conversation, and keeps the admitted ones in order", async () => {
    const frames: ServerFrame[] = [];
    const ws = { bufferedAmount: 0, send: (data: Buffer) => frames.push(ServerFrame.decode(data)), close: () => {}, terminate: () => {} } as unknown as WebSocket;
    const calls: string[] = [];
    const pending = new Map<string, (v: unknown) => void>();
    const backends = {
      tokens: { verify: async () => ({ userId: "u1", username: "alice", expiresAtMs: Date.now() + 60_000, sessionId: "s1" }) },
      liveness: { isLive: async () => true },
      presenceConnect: async () => ({}),
      kick: async () => {},
      userOnline: () => {},
      readLog: async () => ({ events: [], head: 0 }),
      logHead: async () => 0,
      // Chat answers each send only when the test says so.
      send: (_actor: unknown, s: { clientMsgId: string; conversationId: string }) => {
        calls.push(s.clientMsgId);
        return new Promise((resolve) => pending.set(s.clientMsgId, () => resolve({ clientMsgId: s.clientMsgId, conversationId: s.conversationId, seq: calls.length, sentAtMs: 1, duplicate: false })));
      },
    } as unknown as MeshGateway;
    const refusedBytes: number[] = [];
    const session = new Session(ws, "proto", backends, CONFIG, {
      register: () => {}, unregister: () => {}, route: () => ({}) as Route, disconnected: async () => {},
      // The user's byte budget: anything over 1,000 bytes is refused.
      admitSend: async (_user, bytes) => {
        if (bytes > 1_000) { refusedBytes.push(bytes); throw new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "bytes", { retryAfterMs: 500 }); }
      },
      deleteAccount: async () => [], endSessions: () => {},
    }, new Logger("test", "error"));
    await session.handle({ ref: 1, traceparent: "", kind: { $case: "hello", value: { token: "t", deviceId: "d1", cursor: 0, takeover: false } } });
    const send = (ref: number, clientMsgId: string, text: string) => session.handle({ ref, traceparent: "", kind: { $case: "send", value: { conversationId: "g:00000000-0000-0000-0000-000000000001", clientMsgId, text, firstSend: false } } });
    const reply = (ref: number) => frames.find((f) => f.ref === ref)?.kind;

    const first = send(10, "a1", "small");
    const big = send(11, "a2", "x".repeat(5_000));
    const third = send(12, "a3", "small too");
    await big;
    // Refused while a1 is still with chat: answered at once, typed, with the wait.
    expect(reply(11)).toMatchObject({ $case: "error", value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED, retryAfterMs: 500 } });
    expect(refusedBytes).toEqual([5_000]);
    expect(calls).toEqual(["a1"]);
    // a3 waits for a1 (one send per conversation at a time), then goes.
    pending.get("a1")!(undefined);
    await first;
    await waitFor("a3 reaches chat", () => calls.length === 2);
    pending.get("a3")!(undefined);
    await third;
    expect(calls).toEqual(["a1", "a3"]);
    expect([reply(10)?.$case, reply(12)?.$case]).toEqual(["sent", "sent"]);
    session.close(1000, "done");
  });
});
