import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientFrame, ErrorCode, ServerFrame } from "../../gen/chat/v1/client.js";
import { authenticate, type ClientError } from "../../internal/client/client.js";
import { Device, device, newUser, startCluster, waitFor, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ SEND_RATE: "5", SEND_BURST: "5", HELLO_TIMEOUT_MS: "1500" }); });
afterAll(async () => { await c?.stop(); });

/** A raw socket that records decoded server frames and the close code. */
async function raw(protocol = "meshchat.v1.proto") {
  const ws = new WebSocket(c.wsUrl, [protocol]);
  const frames: ServerFrame[] = [];
  let closed: number | undefined;
  ws.on("message", (data, isBinary) => frames.push(isBinary ? ServerFrame.decode(data as Buffer) : ServerFrame.fromJSON(JSON.parse(String(data)))));
  ws.on("close", (code) => { closed = code; });
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  return {
    ws,
    frames,
    closed: () => closed,
    send: (f: Partial<ClientFrame>) => ws.send(ClientFrame.encode(ClientFrame.create(f)).finish()),
    errors: () => frames.flatMap((f) => (f.kind?.$case === "error" ? [f.kind.value] : [])),
  };
}

describe("bad input at the edge", () => {
  it("refuses frames before Hello with HELLO_REQUIRED and keeps waiting for Hello", async () => {
    const user = await newUser(c);
    const s = await raw();
    s.send({ ref: 1, kind: { $case: "send", value: { conversationId: "g:00000000-0000-0000-0000-000000000000", clientMsgId: "x", text: "hi", firstSend: false } } });
    await waitFor("error", () => s.errors().length === 1);
    expect(s.errors()[0]!.code).toBe(ErrorCode.ERROR_CODE_HELLO_REQUIRED);
    expect(s.frames[0]!.ref).toBe(1);
    // State unchanged: a proper Hello still works on the same socket.
    s.send({ ref: 2, kind: { $case: "hello", value: { token: user.token, deviceId: "raw", cursor: 0, takeover: false } } });
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    s.ws.close();
  });

  it("refuses malformed frames with INVALID_FRAME without closing the session", async () => {
    const user = await newUser(c);
    const s = await raw();
    s.ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    s.ws.send("this is text on the binary subprotocol");
    await waitFor("two errors", () => s.errors().length === 2);
    expect(s.errors().map((e) => e.code)).toEqual([ErrorCode.ERROR_CODE_INVALID_FRAME, ErrorCode.ERROR_CODE_INVALID_FRAME]);
    s.send({ ref: 3, kind: { $case: "hello", value: { token: user.token, deviceId: "raw2", cursor: 0, takeover: false } } });
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    // After Hello, an empty frame and a JSON-ish text are still typed errors.
    s.send({ ref: 4 });
    await waitFor("third error", () => s.errors().length === 3);
    expect(s.errors()[2]!.code).toBe(ErrorCode.ERROR_CODE_INVALID_FRAME);
    expect(s.closed()).toBeUndefined();
    s.ws.close();
  });

  it("speaks proto3 JSON on the JSON subprotocol and rejects bad JSON", async () => {
    const user = await newUser(c);
    const s = await raw("meshchat.v1.json");
    s.ws.send("{not json");
    await waitFor("error", () => s.errors().length === 1);
    expect(s.errors()[0]!.code).toBe(ErrorCode.ERROR_CODE_INVALID_FRAME);
    s.ws.send(JSON.stringify({ ref: "5", hello: { token: user.token, deviceId: "json", cursor: "0" } }));
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    s.ws.send(JSON.stringify({ ref: "6", listConversations: {} }));
    await waitFor("list", () => s.frames.some((f) => f.kind?.$case === "conversations" && f.ref === 6));
    s.ws.close();
  });

  it("refuses a bad or expired token with UNAUTHENTICATED and closes", async () => {
    for (const token of ["not-a-token", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"]) {
      const s = await raw();
      s.send({ ref: 1, kind: { $case: "hello", value: { token, deviceId: "d", cursor: 0, takeover: false } } });
      await waitFor("closed", () => s.closed() !== undefined);
      expect(s.errors()[0]!.code).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
      expect(s.closed()).toBe(4401);
    }
  });

  it("closes a socket that never says Hello", async () => {
    const s = await raw();
    await waitFor("hello timeout", () => s.closed() !== undefined);
    expect(s.closed()).toBe(4408);
  });

  it("refuses wrong credentials and bad sign-ups over HTTP with typed errors", async () => {
    const user = await newUser(c);
    await expect(authenticate(c.httpUrl, "login", user.username, "wrong password!")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_UNAUTHENTICATED });
    await expect(authenticate(c.httpUrl, "signup", user.username, "another password")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_ALREADY_EXISTS });
    await expect(authenticate(c.httpUrl, "signup", "X", "short")).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT });
    const ok = await authenticate(c.httpUrl, "login", user.username, "correct horse battery");
    expect(ok.userId).toBe(user.userId);
  });

  it("rate-limits a flood of sends with RATE_LIMITED and a retry hint, storing only what was accepted", async () => {
    const alice = await newUser(c);
    const bob = await newUser(c);
    const a = await device(c, alice);
    const conv = await a.client.openDirect(bob.username);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => a.client.request({ $case: "send", value: { conversationId: conv.id, clientMsgId: `flood-${i}`, text: `flood ${i}`, firstSend: false } })));
    const limited = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as ClientError);
    const accepted = results.filter((r) => r.status === "fulfilled");
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.every((e) => e.code === ErrorCode.ERROR_CODE_RATE_LIMITED && e.retryable && e.retryAfterMs > 0)).toBe(true);
    const page = await a.client.history(conv.id, { limit: 50 });
    expect(page.messages).toHaveLength(accepted.length);
    a.close();
  });

  it("refuses malformed ids, empty text and unknown users with INVALID_ARGUMENT / NOT_FOUND", async () => {
    const alice = await newUser(c);
    const a = await device(c, alice);
    const bad = async (p: Promise<unknown>) => ((await p.catch((e) => e)) as ClientError).code;
    expect(await bad(a.client.send("not-a-conversation", "x"))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    // A direct conversation with oneself is refused, and nothing is created.
    expect(await bad(a.client.openDirect(alice.username))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(await a.client.listConversations()).toEqual([]);
    const conv = await a.client.openDirect((await newUser(c)).username);
    expect(await bad(a.client.send(conv.id, ""))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(await bad(a.client.openDirect("nobody-by-this-name"))).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
    expect(await bad(a.client.history("g:00000000-0000-0000-0000-000000000000"))).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    a.close();
  });
});

describe("JSON frames and numbers, validated", () => {
  it("refuses frames the proto3 JSON mapping refuses, naming the field, storing nothing, keeping the session", async () => {
    const [alice, bob] = [await newUser(c), await newUser(c)];
    const a = await device(c, alice);
    const conv = await a.client.openDirect(bob.username);
    const s = await raw("meshchat.v1.json");
    s.ws.send(JSON.stringify({ ref: "1", hello: { token: alice.token, deviceId: "json-strict", cursor: "0" } }));
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    const bad: Array<[object, RegExp]> = [
      [{ ref: 2, send: { conversationId: conv.id, clientMsgId: "x1", text: { a: 1 } } }, /Send\.text/],
      [{ ref: 3, send: { conversationId: conv.id, clientMsgId: "x2", text: 12345 } }, /Send\.text/],
      [{ ref: 4, send: { conversationId: conv.id, clientMsgId: "x3", text: ["x", "y"] } }, /Send\.text/],
      [{ ref: 5, createGroup: { title: "t", usernames: bob.username } }, /CreateGroupRequest\.usernames/],
      [{ ref: 6, send: { conversationId: conv.id, clientMsgId: "x4", text: "t" }, leave: { conversationId: conv.id } }, /oneof/],
      [{ ref: 7, history: { conversationId: conv.id, fromSeq: -1 } }, /from_seq/],
      [{ ref: 8, history: { conversationId: conv.id, limit: -5 } }, /limit/],
      [{ ref: 9, history: { conversationId: conv.id, limit: "lots" } }, /limit/],
      [{ ref: 10, history: { conversationId: conv.id, fromSeq: 1e30 } }, /from_seq/],
      [{ ref: 11, ack: { conversationId: conv.id, seq: -1, kind: "ACK_KIND_READ" } }, /Ack\.seq/],
      [{ ref: 12, ack: { conversationId: conv.id, seq: "abc", kind: "ACK_KIND_READ" } }, /Ack\.seq/],
      [{ ref: 13, sync: { afterPos: -3 } }, /after_pos/],
    ];
    for (const [frame] of bad) s.ws.send(JSON.stringify(frame));
    await waitFor("an error for each", () => s.errors().length === bad.length, { seen: () => JSON.stringify(s.errors()) });
    for (const [frame, field] of bad) {
      const reply = s.frames.find((f) => f.ref === (frame as { ref: number }).ref)!;
      expect(reply.kind?.$case, JSON.stringify(frame)).toBe("error");
      const e = reply.kind?.$case === "error" ? reply.kind.value : undefined;
      expect([ErrorCode.ERROR_CODE_INVALID_ARGUMENT, ErrorCode.ERROR_CODE_INVALID_FRAME]).toContain(e!.code);
      expect(e!.retryable).toBe(false);
      expect(e!.message).toMatch(field);
    }
    // Nothing was stored, and the session still works.
    expect((await a.client.history(conv.id)).messages).toEqual([]);
    s.ws.send(JSON.stringify({ ref: 20, send: { conversationId: conv.id, clientMsgId: "ok", text: "fine" } }));
    await waitFor("sent", () => s.frames.some((f) => f.ref === 20 && f.kind?.$case === "sent"));
    expect(s.closed()).toBeUndefined();
    s.ws.close();
    a.close();
  });

  it("refuses a Hello with a malformed cursor without closing, and replays from 0 for a cursor beyond the log", async () => {
    const [alice, bob] = [await newUser(c), await newUser(c)];
    const b = await device(c, bob);
    const conv = await b.client.openDirect(alice.username);
    for (const t of ["one", "two", "three"]) await b.client.send(conv.id, t);
    const s = await raw("meshchat.v1.json");
    s.ws.send(JSON.stringify({ ref: "1", hello: { token: alice.token, deviceId: "cur", cursor: "abc" } }));
    await waitFor("error", () => s.errors().length === 1);
    expect(s.errors()[0]!.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    s.ws.send(JSON.stringify({ ref: "2", hello: { token: alice.token, deviceId: "cur", cursor: "0" } }));
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    s.ws.close();
    // A device whose cursor is far beyond its log: told so, and given the whole log again.
    const d = new Device(c, alice, "ahead", { cursor: 1_000_000 });
    const resets: number[] = [];
    d.client.on("reset", () => resets.push(Date.now()));
    await d.connect();
    await waitFor("every message again", () => d.in(conv.id).length === 3, { seen: () => JSON.stringify(d.in(conv.id).map((m) => m.text)) });
    expect(d.in(conv.id).map((m) => m.text)).toEqual(["one", "two", "three"]);
    expect(resets).toHaveLength(1);
    expect(d.client.cursor).toBeLessThan(1_000_000);
    d.close();
    b.close();
  });
});

describe("what one client's input may do to others", () => {
  it("refuses control characters with INVALID_ARGUMENT, and another user's sends beside them all succeed", async () => {
    const [mallory, victim, friend] = [await newUser(c), await newUser(c), await newUser(c)];
    const m = await device(c, mallory);
    const v = await device(c, victim);
    const mConv = await m.client.openDirect(friend.username);
    const vConv = await v.client.openDirect(friend.username);
    // Both at once, so the sequencer could put them in one store batch.
    const [bad, good] = await Promise.all([
      Promise.allSettled(Array.from({ length: 5 }, (_, i) => m.client.request({ $case: "send", value: { conversationId: mConv.id, clientMsgId: `nul-${i}`, text: `x\u0000y${i}`, firstSend: false } }))),
      Promise.allSettled(Array.from({ length: 5 }, (_, i) => v.client.send(vConv.id, `fine ${i}`))),
    ]);
    expect(bad.every((r) => r.status === "rejected" && (r.reason as ClientError).code === ErrorCode.ERROR_CODE_INVALID_ARGUMENT && !(r.reason as ClientError).retryable)).toBe(true);
    expect(good.map((r) => r.status)).toEqual(Array(5).fill("fulfilled"));
    expect((await m.client.history(mConv.id)).messages).toEqual([]);
    expect(((await m.client.createGroup("a\u0000b", []).catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    m.close();
    v.close();
  });

  it("admits a legal 100,000-character message in JSON with every character escaped, and explains an oversize frame before closing", async () => {
    const [alice, bob] = [await newUser(c), await newUser(c)];
    const a = await device(c, alice);
    const conv = await a.client.openDirect(bob.username);
    const s = await raw("meshchat.v1.json");
    s.ws.send(JSON.stringify({ ref: 1, hello: { token: alice.token, deviceId: "json-big", cursor: "0" } }));
    await waitFor("welcome", () => s.frames.some((f) => f.kind?.$case === "welcome"));
    // U+1F600 as two \u escapes: 12 bytes per character, about 1.2 MB in all.
    const escaped = "\\ud83d\\ude00".repeat(100_000);
    const frame = `{"ref":2,"send":{"conversationId":"${conv.id}","clientMsgId":"big","text":"${escaped}"}}`;
    expect(frame.length).toBeGreaterThan(1_200_000);
    s.ws.send(frame);
    await waitFor("sent", () => s.frames.some((f) => f.ref === 2 && f.kind?.$case === "sent"), { seen: () => JSON.stringify(s.errors()) });
    const [stored] = (await a.client.history(conv.id)).messages;
    expect(Array.from(stored!.text)).toHaveLength(100_000);
    // A frame over the limit: told why, then closed with 1009.
    s.ws.send(`{"ref":3,"send":{"conversationId":"${conv.id}","clientMsgId":"huge","text":"${"x".repeat(1_400_000)}"}}`);
    await waitFor("closed", () => s.closed() !== undefined);
    expect(s.closed()).toBe(1009);
    expect(s.errors().at(-1)!.message).toMatch(/over the limit/);
    a.close();
  });
});
