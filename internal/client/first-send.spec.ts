import { describe, expect, it } from "vitest";
import { ClientFrame, ServerFrame, type Send } from "../../gen/chat/v1/client.js";
import { FakeSocket } from "../../test/support/fake-socket.js";
import { ChatClient, type SocketLike } from "./client.js";

/** An edge in memory: it welcomes every Hello and keeps the sends it was given. */
class FakeEdge {
  readonly sockets: EdgeSocket[] = [];
  readonly sends: Send[] = [];
  answer = true;

  socket = (url: string): SocketLike => {
    const s = new EdgeSocket(url, this);
    this.sockets.push(s);
    queueMicrotask(() => { s.readyState = 1; s.onopen?.({}); });
    return s;
  };

  receive(s: EdgeSocket, frame: ClientFrame): void {
    const kind = frame.kind;
    if (kind?.$case === "hello") {
      s.reply({ ref: frame.ref, kind: { $case: "welcome", value: { userId: "u", username: "u", deviceId: "d", sessionId: "s", heartbeatIntervalMs: 60_000, maxTextLength: 100_000, serverTimeMs: 0 } } });
    } else if (kind?.$case === "send") {
      // A copy: the client may change its own frame once it has gone out.
      this.sends.push({ ...kind.value });
      if (this.answer) s.reply({ ref: frame.ref, kind: { $case: "sent", value: { clientMsgId: kind.value.clientMsgId, conversationId: kind.value.conversationId, seq: this.sends.length, sentAtMs: 0, duplicate: false } } });
    }
  }
}

/** A socket to FakeEdge: what it sends reaches the edge, the edge's replies come back as messages. */
class EdgeSocket extends FakeSocket {
  constructor(url: string, private readonly edge: FakeEdge) { super(url); }
  override send(data: Uint8Array): void {
    this.edge.receive(this, ClientFrame.decode(data));
  }
  reply(frame: Partial<ServerFrame>): void {
    const bytes = ServerFrame.encode(ServerFrame.fromPartial(frame)).finish();
    queueMicrotask(() => this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) }));
  }
}

describe("ChatClient first sends", () => {
  it("marks a message first only on its first transmission of an id it made up; a resend after a reconnect is not", async () => {
    const edge = new FakeEdge();
    const client = new ChatClient({ url: "ws://edge/v1/ws", token: "t", deviceId: "d", socket: edge.socket });
    await client.connect();
    // The edge takes the message and the connection drops before its Sent.
    edge.answer = false;
    const sent = client.send("c", "hello");
    await new Promise((r) => setTimeout(r, 0));
    expect(edge.sends.map((s) => s.firstSend)).toEqual([true]);
    edge.answer = true;
    edge.sockets[0]!.close();
    const resent = await sent;
    expect(edge.sockets.length).toBe(2);
    expect(edge.sends.map((s) => [s.clientMsgId, s.firstSend])).toEqual([[resent.clientMsgId, true], [resent.clientMsgId, false]]);
    // An id the caller chose may have gone out before (an outbox kept across restarts): never first.
    await client.send("c", "again", "kept-in-an-outbox");
    expect(edge.sends.at(-1)).toMatchObject({ clientMsgId: "kept-in-an-outbox", firstSend: false });
    await client.close();
  });
});
