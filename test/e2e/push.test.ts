import { createHmac } from "node:crypto";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { ErrorCode, PushProvider, type ClientError } from "../../internal/client/client.js";
import { device, newUser, startCluster, waitFor, type TestCluster } from "./harness.js";

/** A real HTTP receiver standing in for an installation's push relay. */
let hook: http.Server;
const received: Array<{ signatureOk: boolean; body: { token: string; title: string; body: string; collapse_key: string; data: Record<string, string> } }> = [];
let c: TestCluster;
const SECRET = "test-webhook-secret";
const COLLAPSE_MS = 1_000;

beforeAll(async () => {
  hook = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const expected = "sha256=" + createHmac("sha256", SECRET).update(raw).digest("hex");
      received.push({ signatureOk: req.headers["x-meshchat-signature"] === expected, body: JSON.parse(raw) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  const port = (hook.address() as { port: number }).port;
  // A short grace period lets the test see a device's disconnect as an OFFLINE change instead of sleeping.
  c = await startCluster({ PUSH_WEBHOOK_URL: `http://127.0.0.1:${port}/push`, PUSH_WEBHOOK_SECRET: SECRET, PUSH_COLLAPSE_WINDOW_MS: String(COLLAPSE_MS), PRESENCE_GRACE_MS: "300" });
});
afterAll(async () => {
  await c?.stop();
  await new Promise((r) => hook.close(r));
});

describe("push notifications (R6)", () => {
  it("pushes to a user with no online device, signed, with a preview; never to the sender; not when muted", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice, "alice-laptop");
    await a.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "alice-token-1");
    const conv = await a.client.openDirect(bob.username);
    // Alice watches bob's presence: his OFFLINE means the edge has let go of his device, so chat sees none online.
    const bobStatus: PresenceStatus[] = [];
    a.client.on("presence", (p) => { if (p.userId === bob.userId) bobStatus.push(p.status); });
    await a.client.presenceSubscribe([bob.userId]);
    const bobGone = async (times: number) => {
      await waitFor(`bob offline (${times})`, () => bobStatus.filter((s) => s === PresenceStatus.PRESENCE_STATUS_OFFLINE).length >= times, { seen: () => bobStatus.join(",") });
    };
    const bobPhone = await device(c, bob, "bob-phone");
    await bobPhone.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "bob-token-1");
    const bad = (await bobPhone.client.registerPushToken(PushProvider.PUSH_PROVIDER_FCM, "x").catch((e) => e)) as ClientError;
    expect(bad.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // FCM is not configured here
    await waitFor("bob online", () => bobStatus.includes(PresenceStatus.PRESENCE_STATUS_ONLINE));
    bobPhone.close();
    await bobGone(1);
    await a.client.send(conv.id, "are you there? " + "x".repeat(300));
    await waitFor("a push for bob", () => received.some((r) => r.body.token === "bob-token-1"));
    const push = received.find((r) => r.body.token === "bob-token-1")!;
    expect(push.signatureOk).toBe(true);
    expect(push.body.title).toBe(alice.username);
    expect(push.body.body.startsWith("are you there?")).toBe(true);
    expect(Array.from(push.body.body).length).toBe(121); // 120 code points + ellipsis
    expect(push.body.collapse_key).toBe(conv.id);
    expect(received.some((r) => r.body.token === "alice-token-1")).toBe(false);

    // Muted: nothing more for this conversation.
    const bobAgain = await device(c, bob, "bob-phone");
    await bobAgain.client.setMuted(conv.id, true);
    const marker = await bobAgain.client.createGroup("marker", [alice.username]);
    bobAgain.close();
    await bobGone(2);
    const before = received.length;
    await a.client.send(conv.id, "muted message");
    // A later message in a conversation bob has not muted: once its push is out, the muted one's would be too.
    await a.client.send(marker.id, "not muted");
    await waitFor("the push for the unmuted conversation", () => received.some((r) => r.body.collapse_key === marker.id));
    expect(received.slice(before).map((r) => r.body.collapse_key)).toEqual([marker.id]);
    a.close();
  });

  it("withdraws the push of a message deleted for everyone before it went out (P7)", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice);
    const conv = await a.client.openDirect(bob.username);
    const phone = await device(c, bob, "bob-phone-2");
    await phone.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "bob-token-2");
    const bobStatus: PresenceStatus[] = [];
    a.client.on("presence", (p) => { if (p.userId === bob.userId) bobStatus.push(p.status); });
    await a.client.presenceSubscribe([bob.userId]);
    await phone.close();
    await waitFor("bob offline", () => bobStatus.includes(PresenceStatus.PRESENCE_STATUS_OFFLINE));
    const pushes = () => received.filter((r) => r.body.token === "bob-token-2").map((r) => r.body.body);
    const first = await a.client.send(conv.id, "first");
    await waitFor("the first push", () => pushes().length === 1);
    // Within the collapse window: held back, then deleted for everyone before the window ends.
    const secret = await a.client.send(conv.id, "the secret words");
    await a.client.deleteMessage(conv.id, secret.seq, true);
    // Once the window is over the secret would have gone out; the next message's push shows it did not.
    await waitFor("the collapse window is over", () => Date.now() > first.sentAtMs + 2 * COLLAPSE_MS);
    await a.client.send(conv.id, "third");
    await waitFor("the third push", () => pushes().some((b) => b.includes("third")));
    expect(pushes().some((b) => b.includes("secret"))).toBe(false);
    await a.close();
  });

  it("pushes to a device that went offline after chat had its route for an earlier message (the route cache lets go at a disconnect)", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice, "alice-laptop");
    const conv = await a.client.openDirect(bob.username);
    const bobStatus: PresenceStatus[] = [];
    a.client.on("presence", (p) => { if (p.userId === bob.userId) bobStatus.push(p.status); });
    await a.client.presenceSubscribe([bob.userId]);
    const bobPhone = await device(c, bob, "bob-phone");
    await bobPhone.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "bob-cached-token");
    await waitFor("bob online", () => bobStatus.includes(PresenceStatus.PRESENCE_STATUS_ONLINE));
    // Delivered live: chat now holds bob's route (the phone) under his route version.
    await a.client.send(conv.id, "while online");
    await waitFor("bob's phone has the first message", () => bobPhone.in(conv.id).length === 1);
    bobPhone.close();
    await waitFor("bob offline", () => bobStatus.includes(PresenceStatus.PRESENCE_STATUS_OFFLINE), { seen: () => bobStatus.join(",") });
    await a.client.send(conv.id, "after he left");
    // With the phone's route still taken for online, the notifier would leave it out of the push.
    // (Its preview counts the unread: "(2 new messages) after he left".)
    await waitFor("a push for bob's phone", () => received.some((r) => r.body.token === "bob-cached-token" && r.body.body.endsWith("after he left")), { seen: () => JSON.stringify(received.filter((r) => r.body.token === "bob-cached-token").map((r) => r.body.body)) });
    expect(received.filter((r) => r.body.token === "bob-cached-token").map((r) => r.body.data["seq"])).toEqual(["2"]);
    await a.close();
  });
});
