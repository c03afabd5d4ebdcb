import { describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { Logger } from "../log/logger.js";
import type { EdgeBackends } from "./backends.js";
import { Session, type SessionConfig } from "./session.js";

const CONFIG: SessionConfig = {
  helloTimeoutMs: 10_000,
  heartbeatIntervalMs: 15_000,
  sendRate: 50,
  sendBurst: 200,
  frameRate: 200,
  frameBurst: 1_000,
  maxBufferedBytes: 8 << 20,
  maxTextLength: 100_000,
  syncPageSize: 1_000,
  headCheckIntervalMs: 0,
  maxPresenceSubscriptions: 200,
};

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
      tokens: { verify: async () => ({ userId: "u1", username: "alice", expiresAtMs: Date.now() + 60_000 }) },
      presenceConnect: () => { connectCalled.resolve(); return connect.promise; },
      kick: async () => {},
      userOnline: () => {},
      readLog: async () => ({ events: [], head: 0 }),
    } as unknown as EdgeBackends;
    const registered = new Set<Session>();
    let unregistered = 0;
    const session = new Session(ws, "proto", backends, CONFIG, {
      register: (s) => registered.add(s),
      unregister: (s) => { registered.delete(s); unregistered++; },
      route: (s) => ({ userId: s.userId, deviceId: s.deviceId, sessionId: s.sessionId, edgeId: "e1", edgeAddress: "e1:1" }),
      disconnected: async () => {},
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
