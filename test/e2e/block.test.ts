import http from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { ErrorCode, PushProvider, type ClientError, type Receipt, type TypingUpdate } from "../../internal/client/client.js";
import { device, newUser, presenceSettled, rawSession, startCluster, waitFor, warnOnFailure, type Device, type TestCluster } from "./harness.js";

// Blocking a user (docs/features.md, "Blocking a user") against real processes; E2E_PROFILE picks the profile.
const pushes: Array<{ token: string; collapse_key: string; body: string }> = [];
let hook: http.Server;
let c: TestCluster;
beforeAll(async () => {
  hook = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => { pushes.push(JSON.parse(Buffer.concat(chunks).toString("utf8"))); res.writeHead(200).end(); });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  const port = (hook.address() as { port: number }).port;
  c = await startCluster({ PUSH_WEBHOOK_URL: `http://127.0.0.1:${port}/push`, PUSH_WEBHOOK_SECRET: "s", PUSH_COLLAPSE_WINDOW_MS: "200", PRESENCE_GRACE_MS: "300", TYPING_THROTTLE_MS: "100", TYPING_EXPIRY_MS: "3000" });
});
afterAll(async () => {
  await c?.stop();
  await new Promise((r) => hook?.close(r));
});
beforeEach(() => warnOnFailure(() => c));

const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: ClientError) => ErrorCode[e.code]);
const OFFLINE = PresenceStatus.PRESENCE_STATUS_OFFLINE;
const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;

/** Alice, bob and carol with a device each, their direct conversation (alice–bob) and a group of the three. */
async function trio() {
  const [alice, bob, carol] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol")];
  const a = await device(c, alice);
  const b = await device(c, bob, undefined, { mode: "json" });
  const k = await device(c, carol);
  const direct = (await a.client.openDirect(bob.username)).id;
  const group = (await a.client.createGroup("three", [bob.username, carol.username])).id;
  return { alice, bob, carol, a, b, k, direct, group };
}

describe("blocking a user", () => {
  it("refuses the blocked user's direct messages and direct conversation with a typed PERMISSION_DENIED on both subprotocols, and the blocker's until unblocked; listable; unblock restores", async () => {
    const { alice, bob, a, b, k, direct } = await trio();
    await a.client.send(direct, "before");
    await waitFor("bob has it", () => b.in(direct).length === 1);
    await a.client.block(bob.username);
    // Blocking again changes nothing and is not an error.
    await a.client.block(bob.username);
    expect((await a.client.listBlocked()).map((u) => [u.userId, u.username])).toEqual([[bob.userId, bob.username]]);

    // Bob (JSON subprotocol): typed refusals, nothing stored.
    expect(await codeOf(b.client.send(direct, "let me in"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(b.client.openDirect(alice.username))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(b.client.edit(direct, 1, "edited"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    // The binary subprotocol says the same.
    const raw = await rawSession(c.wsUrl, bob.token, "raw-bob");
    raw.send({ ref: 2, kind: { $case: "send", value: { conversationId: direct, clientMsgId: "raw-1", text: "binary", firstSend: false } } });
    await waitFor("the binary refusal", () => raw.reply(2) !== undefined);
    expect(raw.reply(2)!.kind).toMatchObject({ $case: "error", value: { code: ErrorCode.ERROR_CODE_PERMISSION_DENIED } });
    raw.ws.close();
    // The blocker cannot write either until she unblocks.
    expect(await codeOf(a.client.send(direct, "you are blocked"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect((await a.client.history(direct)).messages.map((m) => m.text)).toEqual(["before"]);

    await a.client.unblock(bob.username);
    expect(await a.client.listBlocked()).toEqual([]);
    await b.client.send(direct, "after");
    await waitFor("alice gets bob's message", () => a.in(direct).some((m) => m.text === "after"));
    await Promise.all([a.close(), b.close(), k.close()]);
  });

  it("bad input is typed and changes nothing: oneself, an unknown user, a malformed name", async () => {
    const ann = await newUser(c, "ann");
    const a = await device(c, ann, undefined, { mode: "json" });
    expect(await codeOf(a.client.block(ann.username))).toBe("ERROR_CODE_INVALID_ARGUMENT");
    expect(await codeOf(a.client.block("nobody-by-this-name"))).toBe("ERROR_CODE_NOT_FOUND");
    expect(await codeOf(a.client.unblock("nobody-by-this-name"))).toBe("ERROR_CODE_NOT_FOUND");
    expect(await codeOf(a.client.block("NOT A NAME!"))).toBe("ERROR_CODE_INVALID_ARGUMENT");
    expect(await a.client.listBlocked()).toEqual([]);
    await a.close();
  });

  it("presence, typing and receipts stop between the two (both ways) while the third member still gets them; unblock restores presence", async () => {
    const { alice, bob, carol, a, b, k, group } = await trio();
    await a.client.block(bob.username);
    // Presence: each sees the other offline with no last seen, though both are online; carol sees both.
    expect(await b.client.presenceQuery([alice.userId])).toEqual([{ userId: alice.userId, status: OFFLINE, lastActiveAtMs: 0 }]);
    expect(await a.client.presenceQuery([bob.userId])).toEqual([{ userId: bob.userId, status: OFFLINE, lastActiveAtMs: 0 }]);
    expect((await k.client.presenceQuery([alice.userId, bob.userId])).map((p) => p.status)).toEqual([ONLINE, ONLINE]);

    // Typing: carol hears alice and bob; they do not hear each other.
    const heard = (d: Device) => { const out: TypingUpdate[] = []; d.client.on("typing", (t) => { if (t.expiresInMs > 0) out.push(t); }); return out; };
    const [byA, byB, byK] = [heard(a), heard(b), heard(k)];
    await a.client.typing(group);
    await b.client.typing(group);
    await waitFor("carol hears both typing", () => byK.some((t) => t.userId === alice.userId) && byK.some((t) => t.userId === bob.userId));
    // A message after the indicators: once each has it, an indicator sent before it would have arrived too.
    await k.client.send(group, "marker");
    await waitFor("alice and bob have the marker", () => a.in(group).length === 1 && b.in(group).length === 1);
    expect(byA.filter((t) => t.userId === bob.userId)).toEqual([]);
    expect(byB.filter((t) => t.userId === alice.userId)).toEqual([]);

    // Receipts go to the senders of what was read: bob's read of alice's message never reaches her,
    // carol's does (one conversation's receipts go out in the order they came); and the other way round.
    const receipts = (d: Device) => { const out: Receipt[] = []; d.client.on("receipt", (r) => out.push(r)); return out; };
    const [toA, toB] = [receipts(a), receipts(b)];
    const fromA = await a.client.send(group, "from alice");
    await waitFor("bob and carol have alice's message", () => b.in(group).length === 2 && k.in(group).length === 2);
    await b.client.markRead(group, fromA.seq);
    await k.client.markRead(group, fromA.seq);
    await waitFor("alice sees carol's receipt", () => toA.some((r) => r.userId === carol.userId && r.readSeq >= fromA.seq));
    expect(toA.filter((r) => r.userId === bob.userId)).toEqual([]);
    const fromB = await b.client.send(group, "from bob");
    await waitFor("alice and carol have bob's message", () => a.in(group).length === 3 && k.in(group).length === 3);
    await a.client.markRead(group, fromB.seq);
    await k.client.markRead(group, fromB.seq);
    await waitFor("bob sees carol's receipt", () => toB.some((r) => r.userId === carol.userId && r.readSeq >= fromB.seq));
    expect(toB.filter((r) => r.userId === alice.userId)).toEqual([]);

    // Shared group messages still flowed both ways above (one history for every member).

    await a.client.unblock(bob.username);
    expect((await b.client.presenceQuery([alice.userId]))[0]!.status).toBe(ONLINE);
    await Promise.all([a.close(), b.close(), k.close()]);
  });

  it("ends the presence subscriptions between the two: the blocked user hears nothing of the blocker coming and going", async () => {
    const { alice, bob, a, b, k } = await trio();
    const seen: PresenceStatus[] = [];
    b.client.on("presence", (p) => { if (p.userId === alice.userId) seen.push(p.status); });
    expect((await b.client.presenceSubscribe([alice.userId]))[0]!.status).toBe(ONLINE);
    await a.client.block(bob.username);
    // A resubscription answers offline with no last seen.
    expect(await b.client.presenceSubscribe([alice.userId])).toEqual([{ userId: alice.userId, status: OFFLINE, lastActiveAtMs: 0 }]);
    await a.close();
    await presenceSettled(c, b);
    const again = await device(c, alice, "laptop");
    await again.close();
    await presenceSettled(c, b);
    expect(seen).toEqual([]);
    await Promise.all([b.close(), k.close()]);
  });

  it("no push for anything from the blocked user, while pushes from others still arrive", async () => {
    const { alice, bob, carol, a, b, k, group } = await trio();
    await a.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, `alice-${alice.userId}`);
    await k.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, `carol-${carol.userId}`);
    const side = (await k.client.openDirect(alice.username)).id;
    await a.client.block(bob.username);
    // Alice and carol go offline (bob watches carol: her OFFLINE means chat sees no device of hers).
    const carolStatus: PresenceStatus[] = [];
    b.client.on("presence", (p) => { if (p.userId === carol.userId) carolStatus.push(p.status); });
    await b.client.presenceSubscribe([carol.userId]);
    await a.close();
    await k.close();
    await waitFor("carol offline", () => carolStatus.includes(OFFLINE));
    await presenceSettled(c, b);

    await b.client.send(group, "from the blocked user");
    // Carol gets a push for it: the push path is working for this very message.
    await waitFor("carol's push for bob's message", () => pushes.some((p) => p.token === `carol-${carol.userId}` && p.collapse_key === group));
    // Then a message for alice from carol: once its push is out, one for bob's message would have been too.
    const carolAgain = await device(c, carol, "carol-2");
    await carolAgain.client.send(side, "from carol");
    await waitFor("alice's push for carol's message", () => pushes.some((p) => p.token === `alice-${alice.userId}` && p.collapse_key === side));
    expect(pushes.filter((p) => p.token === `alice-${alice.userId}` && p.collapse_key === group)).toEqual([]);
    await Promise.all([b.close(), carolAgain.close()]);
  });
});
