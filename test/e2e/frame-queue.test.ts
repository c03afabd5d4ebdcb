import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientFrame, ErrorCode, ServerFrame } from "../../gen/chat/v1/client.js";
import { newUser, startCluster, waitFor, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ MAX_QUEUED_FRAMES: "16" }); });
afterAll(async () => { await c?.stop(); });

describe("frames waiting in the edge", () => {
  it("refuses frames past the per-session queue with RATE_LIMITED at once, and keeps the session", async () => {
    const user = await newUser(c);
    const ws = new WebSocket(c.wsUrl, ["meshchat.v1.proto"]);
    const frames: ServerFrame[] = [];
    ws.on("message", (data) => frames.push(ServerFrame.decode(data as Buffer)));
    await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
    const send = (f: Partial<ClientFrame>) => ws.send(ClientFrame.encode(ClientFrame.create(f)).finish());
    send({ ref: 1, kind: { $case: "hello", value: { token: user.token, deviceId: "flood", cursor: 0, takeover: false } } });
    await waitFor("synced", () => frames.some((f) => f.kind?.$case === "synced"));
    // 400 requests without waiting for any reply: they arrive together, faster than they are handled.
    const N = 400;
    for (let i = 0; i < N; i++) send({ ref: 100 + i, kind: { $case: "heartbeat", value: {} } });
    const answered = () => frames.filter((f) => f.ref >= 100 && f.ref < 100 + N);
    await waitFor("an answer to every request", () => answered().length === N, { seen: () => `${answered().length} of ${N}` });
    const refused = answered().filter((f) => f.kind?.$case === "error" && f.kind.value.code === ErrorCode.ERROR_CODE_RATE_LIMITED);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((f) => f.kind?.$case === "error" && f.kind.value.retryAfterMs > 0)).toBe(true);
    expect(answered().filter((f) => f.kind?.$case === "heartbeatAck").length).toBe(N - refused.length);
    // The session is intact: the next request is answered.
    send({ ref: 9_999, kind: { $case: "heartbeat", value: {} } });
    await waitFor("the next request answered", () => frames.some((f) => f.ref === 9_999 && f.kind?.$case === "heartbeatAck"));
    ws.close();
  });
});
