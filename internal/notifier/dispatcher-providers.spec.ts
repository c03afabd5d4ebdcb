/**
 * The push dispatcher end to end against real local provider servers (FCM over
 * HTTPS, APNs over HTTP/2 + TLS, a webhook over HTTP) with the real adapters.
 * Time is virtual (FakeClock): windows, backoffs and rate limits of seconds
 * take no wall-clock time; only real network round trips are awaited.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PushDispatcher, type DispatcherOptions, type Notification } from "./dispatcher.js";
import { ApnsProvider } from "./provider-apns.js";
import { FcmProvider } from "./provider-fcm.js";
import { WebhookProvider } from "./provider-webhook.js";
import type { ProviderName, PushProvider } from "./provider.js";
import { MemoryTokenStore } from "./token-store-memory.js";
import { APNS, FakeApnsServer, FakeClock, FakeFcmServer, virtualDispatcher, FakeWebhookServer, FCM, selfSignedCert, settle, waitFor } from "../../test/support/notifier-fakes.js";
import { sleep } from "../run/sleep.js";

let fcm: FakeFcmServer;
let apns: FakeApnsServer;
let hook: FakeWebhookServer;
let tls: { key: string; cert: string };

beforeAll(async () => {
  tls = selfSignedCert();
  [fcm, apns, hook] = await Promise.all([FakeFcmServer.start(tls), FakeApnsServer.start(tls), FakeWebhookServer.start()]);
});
afterAll(async () => {
  await Promise.all([fcm.close(), apns.close(), hook.close()]);
});

interface Rig {
  d: PushDispatcher;
  clock: FakeClock;
  tokens: MemoryTokenStore;
  warnings: Array<{ msg: string; fields: Record<string, unknown> }>;
  providers: Map<ProviderName, PushProvider>;
}
const rigs: Rig[] = [];
let seq = 0;
/** Unique device tokens per test, so each test reads only its own requests. */
const uniq = (name: string) => `${name}-${++seq}-${Date.now().toString(36)}`;

function rig(opts: Partial<DispatcherOptions> = {}): Rig {
  const tokens = new MemoryTokenStore();
  const providers = new Map<ProviderName, PushProvider>([
    ["fcm", new FcmProvider({ serviceAccount: fcm.serviceAccount, endpoint: fcm.url, ca: tls.cert, timeoutMs: 2_000 })],
    ["apns", new ApnsProvider({ teamId: apns.teamId, keyId: apns.keyId, privateKey: apns.privateKey, bundleId: apns.bundleId, endpoint: apns.url, ca: apns.ca, timeoutMs: 2_000 })],
    ["webhook", new WebhookProvider({ url: hook.url, secret: hook.secret, timeoutMs: 2_000 })],
  ]);
  const r = { ...virtualDispatcher(providers, tokens, opts), tokens, providers };
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.d.stop(1_000);
    for (const p of r.providers.values()) await p.close();
  }
  hook.answers.length = 0;
  apns.answers.length = 0;
  fcm.sendAnswers.length = 0;
  await waitFor("provider connections closed", () => fcm.openConnections === 0 && hook.openConnections === 0 && apns.sessions.size === 0);
  expect([...fcm.problems.splice(0), ...apns.problems.splice(0)]).toEqual([]);
});

const toWebhook = (token: string) => hook.requests.filter((r) => r.body?.token === token);
const toFcm = (token: string) => fcm.sends.filter((s) => s.body?.message?.token === token);
const toApns = (token: string) => apns.requests.filter((r) => r.path === `/3/device/${token}`);

function note(userId: string, conversationId: string, seq: number, text: string, extra: Partial<Notification> = {}): Notification {
  return { userId, conversationId, seq, senderName: "alice", conversationTitle: "", text, muted: false, ...extra };
}

/** Lets real network exchanges finish when nothing observable is expected to change. */
const quiet = async () => {
  await sleep(30);
  await settle();
};

describe("push dispatcher against real provider servers", () => {
  it("pushes through each device's provider, with the documented content, and never to excluded devices", async () => {
    const { d, tokens } = rig();
    const [phone, tablet, laptop] = [uniq("apns"), uniq("fcm"), uniq("hook")];
    await tokens.register("bob", "phone", "apns", phone);
    await tokens.register("bob", "tablet", "fcm", tablet);
    await tokens.register("bob", "laptop", "webhook", laptop);
    await d.notify(note("bob", "d:alice:bob", 1, "are you there?", { excludeDeviceIds: ["laptop"] }));
    await waitFor("apns and fcm pushes", () => toApns(phone).length === 1 && toFcm(tablet).length === 1);
    await quiet();
    expect(toWebhook(laptop)).toHaveLength(0);
    expect(toApns(phone)[0]!.body).toEqual({
      aps: { alert: { title: "alice", body: "are you there?" }, sound: "default", "thread-id": "d:alice:bob" },
      conversation_id: "d:alice:bob",
      seq: "1",
      count: "1",
    });
    expect(toFcm(tablet)[0]!.body.message).toMatchObject({ notification: { title: "alice", body: "are you there?" }, android: { collapse_key: "d:alice:bob" } });
    expect(d.stats()).toMatchObject({ sent: 2, failed: 0, pending: 0 });
  });

  it("retries with exponential backoff and full jitter, honouring Retry-After, counting attempts", async () => {
    const { d, tokens, clock } = rig({ baseBackoffMs: 500 });
    const t = uniq("hook");
    await tokens.register("bob", "laptop", "webhook", t);
    hook.answers.push({ status: 503 }, { status: 429, headers: { "retry-after": "3" } }, { status: 500 }, { status: 200 });
    await d.notify(note("bob", "d:alice:bob", 1, "hello"));
    await waitFor("attempt 1", () => toWebhook(t).length === 1 && clock.sleeps.length === 1);
    expect(clock.sleeps).toEqual([250]); // random 0.5 x min(30 s, 500 ms)
    await clock.advance(250);
    await waitFor("attempt 2", () => toWebhook(t).length === 2 && clock.sleeps.length === 2);
    expect(clock.sleeps[1]).toBe(3_000); // Retry-After beats the 500 ms jitter
    await clock.advance(2_999);
    await quiet();
    expect(toWebhook(t)).toHaveLength(2); // not before Retry-After
    await clock.advance(1);
    await waitFor("attempt 3", () => toWebhook(t).length === 3 && clock.sleeps.length === 3);
    expect(clock.sleeps[2]).toBe(1_000); // 0.5 x 2000
    await clock.advance(1_000);
    await waitFor("attempt 4 succeeds", () => d.stats().sent === 1);
    expect(toWebhook(t)).toHaveLength(4);
    expect(d.stats()).toMatchObject({ sent: 1, retried: 3, failed: 0 });
  });

  it("gives up after maxAttempts with a logged reason", async () => {
    const { d, tokens, clock, warnings } = rig({ maxAttempts: 3, baseBackoffMs: 100 });
    const t = uniq("apns");
    await tokens.register("bob", "phone", "apns", t);
    apns.answers.push(APNS.internal, APNS.unavailable, APNS.internal);
    await d.notify(note("bob", "d:alice:bob", 1, "hello"));
    for (let i = 1; i <= 3; i++) {
      // Advance only once the dispatcher sleeps on its backoff (after attempt 3 it gives up instead).
      await waitFor(`attempt ${i}`, () => toApns(t).length === i && (i === 3 || clock.sleeps.length === i));
      await clock.advance(10_000);
    }
    await waitFor("given up", () => d.stats().failed === 1);
    await quiet();
    expect(toApns(t)).toHaveLength(3);
    expect(d.stats()).toMatchObject({ retried: 2, failed: 1, sent: 0 });
    expect(warnings).toContainEqual({ msg: "push given up after 3 attempt(s)", fields: expect.objectContaining({ provider: "apns", reason: "apns 500 InternalServerError", attempts: 3 }) });
    expect(await tokens.listForUser("bob")).toHaveLength(1); // a failing provider is not a dead token
  });

  it("removes dead tokens (FCM 404 UNREGISTERED, APNs 410 Unregistered, webhook 410) and keeps the others", async () => {
    const { d, tokens } = rig();
    const [phone, tablet, laptop, carolPhone] = [uniq("apns"), uniq("fcm"), uniq("hook"), uniq("apns")];
    await tokens.register("bob", "phone", "apns", phone);
    await tokens.register("bob", "tablet", "fcm", tablet);
    await tokens.register("bob", "laptop", "webhook", laptop);
    await tokens.register("carol", "phone", "apns", carolPhone);
    apns.answers.push(APNS.unregistered);
    fcm.sendAnswers.push(FCM.unregistered);
    hook.answers.push({ status: 410 });
    await d.notify(note("bob", "d:alice:bob", 1, "hello"));
    await waitFor("three dead tokens removed", () => d.stats().deadTokens === 3);
    expect(await tokens.listForUser("bob")).toEqual([]);
    expect(await tokens.listForUser("carol")).toEqual([{ deviceId: "phone", provider: "apns", token: carolPhone }]);
    expect(d.stats()).toMatchObject({ retried: 0, failed: 0, sent: 0 });
    // The next message reaches nobody through the dead tokens.
    await d.notify(note("bob", "g:other", 1, "anyone?", { conversationTitle: "other" }));
    await quiet();
    expect([toApns(phone).length, toFcm(tablet).length, toWebhook(laptop).length]).toEqual([1, 1, 1]);
  });

  it("skips muted conversations entirely", async () => {
    const { d, tokens } = rig();
    const t = uniq("hook");
    await tokens.register("bob", "laptop", "webhook", t);
    await d.notify(note("bob", "g:team", 1, "psst", { muted: true, conversationTitle: "team" }));
    await quiet();
    expect(toWebhook(t)).toHaveLength(0);
    expect(d.stats()).toMatchObject({ muted: 1, sent: 0, pending: 0 });
  });

  it("collapses quick messages: the first at once, the rest as one push with the count and the latest preview", async () => {
    const { d, tokens, clock } = rig({ collapseWindowMs: 2_000 });
    const t = uniq("apns");
    await tokens.register("bob", "phone", "apns", t);
    for (let i = 1; i <= 5; i++) await d.notify(note("bob", "d:alice:bob", i, `m${i}`));
    await waitFor("first push", () => toApns(t).length === 1);
    expect(toApns(t)[0]!.body.aps.alert.body).toBe("m1");
    // Another conversation is not held back by this one's window.
    await d.notify(note("bob", "g:team", 1, "standup?", { conversationTitle: "team", senderName: "carol" }));
    await waitFor("other conversation", () => toApns(t).length === 2);
    expect(toApns(t)[1]!.body.aps.alert).toEqual({ title: "team", body: "carol: standup?" });

    await clock.advance(1_999);
    await quiet();
    expect(toApns(t)).toHaveLength(2);
    await clock.advance(1);
    await waitFor("collapsed push", () => toApns(t).length === 3);
    const collapsed = toApns(t)[2]!;
    expect(collapsed.body.aps.alert.body).toBe("(5 new messages) m5");
    expect(collapsed.body).toMatchObject({ seq: "5", count: "5" });
    expect(collapsed.headers["apns-collapse-id"]).toBe("d:alice:bob");

    // N more quick messages within the next window -> exactly one more request, with the running count.
    for (let i = 6; i <= 8; i++) await d.notify(note("bob", "d:alice:bob", i, `m${i}`));
    await clock.advance(2_000);
    await waitFor("second collapsed push", () => toApns(t).length === 4);
    await quiet();
    expect(toApns(t)).toHaveLength(4);
    expect(toApns(t)[3]!.body.aps.alert.body).toBe("(8 new messages) m8");
    expect(d.stats()).toMatchObject({ sent: 4, collapsed: 3 + 2 });
  });

  it("clearCollapse (user came online) drops the pending push; the next message pushes at once with a fresh count", async () => {
    const { d, tokens, clock } = rig({ collapseWindowMs: 2_000 });
    const t = uniq("hook");
    await tokens.register("bob", "laptop", "webhook", t);
    await d.notify(note("bob", "d:alice:bob", 1, "m1"));
    await d.notify(note("bob", "d:alice:bob", 2, "m2"));
    await waitFor("first push", () => toWebhook(t).length === 1);
    d.clearCollapse("bob");
    await clock.advance(5_000);
    await quiet();
    expect(toWebhook(t)).toHaveLength(1);
    await d.notify(note("bob", "d:alice:bob", 3, "m3"));
    await waitFor("fresh push", () => toWebhook(t).length === 2);
    expect(toWebhook(t)[1]!.body).toMatchObject({ body: "m3", data: { count: "1", seq: "3" } });
  });

  it("cuts previews by code points, never splitting an emoji", async () => {
    const { d, tokens } = rig({ previewLength: 5 });
    const [phone, tablet] = [uniq("apns"), uniq("fcm")];
    await tokens.register("bob", "phone", "apns", phone);
    await tokens.register("bob", "tablet", "fcm", tablet);
    await d.notify(note("bob", "g:team", 1, "😀😃😄😁😆😅🤣 and more", { conversationTitle: "team" }));
    await waitFor("pushes", () => toApns(phone).length === 1 && toFcm(tablet).length === 1);
    for (const body of [toApns(phone)[0]!.body.aps.alert.body as string, toFcm(tablet)[0]!.body.message.notification.body as string]) {
      expect(body).toBe("alice: 😀😃😄😁😆…");
      expect(Buffer.from(body, "utf8").toString("utf8")).toBe(body); // no lone surrogate (it would become U+FFFD)
    }
    // 5 code points are 10 UTF-16 units: a UTF-16 cut would have kept only 2.5 emoji.
    expect(Array.from("😀😃😄😁😆")).toHaveLength(5);
  });

  it("over the per-device rate limit, pushes wait (newer ones replacing them), none is dropped", async () => {
    const { d, tokens, clock } = rig({ perDeviceRatePerMinute: 2, collapseWindowMs: 2_000 });
    const t = uniq("hook");
    await tokens.register("bob", "laptop", "webhook", t);
    for (const c of ["c1", "c2", "c3", "c4"]) await d.notify(note("bob", c, 1, `first in ${c}`));
    await waitFor("burst of 2, then waiting for the bucket", () => toWebhook(t).length === 2 && d.stats().deferred === 2);
    await quiet();
    expect(toWebhook(t)).toHaveLength(2);
    expect(d.stats()).toMatchObject({ deferred: 2, pending: 2 });
    // A newer message of c3 replaces its waiting push (after c3's window) and keeps its turn.
    await d.notify(note("bob", "c3", 2, "second in c3"));
    await clock.advance(2_000);
    await quiet();
    expect(toWebhook(t)).toHaveLength(2);
    await clock.advance(28_000); // one token per 30 s
    await waitFor("third", () => toWebhook(t).length === 3);
    expect(toWebhook(t)[2]!.body).toMatchObject({ collapse_key: "c3", body: "(2 new messages) second in c3" });
    await clock.advance(30_000);
    await waitFor("fourth", () => toWebhook(t).length === 4);
    expect(toWebhook(t)[3]!.body).toMatchObject({ collapse_key: "c4", body: "first in c4" });
    expect(d.stats()).toMatchObject({ sent: 4, collapsed: 1, pending: 0 });
  });

  it("a newer message replaces a push waiting for its retry, and goes out after the backoff", async () => {
    const { d, tokens, clock } = rig({ baseBackoffMs: 10_000, collapseWindowMs: 2_000 });
    const t = uniq("fcm");
    await tokens.register("bob", "tablet", "fcm", t);
    fcm.sendAnswers.push(FCM.unavailable());
    await d.notify(note("bob", "d:alice:bob", 1, "m1"));
    await waitFor("first attempt", () => toFcm(t).length === 1 && clock.sleeps.includes(5_000));
    await d.notify(note("bob", "d:alice:bob", 2, "m2"));
    await clock.advance(2_000); // window ends: m2 takes m1's place in the backoff
    await quiet();
    expect(toFcm(t)).toHaveLength(1);
    await clock.advance(3_000);
    await waitFor("retry with the newer content", () => toFcm(t).length === 2);
    expect(toFcm(t)[1]!.body.message.notification.body).toBe("(2 new messages) m2");
    await waitFor("sent", () => d.stats().sent === 1);
    expect(d.stats()).toMatchObject({ retried: 1, collapsed: 1, failed: 0 });
  });

  it("stop() sends what is pending once, gives up retries with a log, and ignores later notifications", async () => {
    const { d, tokens, warnings } = rig({ collapseWindowMs: 60_000 });
    const [laptop, phone] = [uniq("hook"), uniq("apns")];
    await tokens.register("bob", "laptop", "webhook", laptop);
    await tokens.register("carol", "phone", "apns", phone);
    await d.notify(note("bob", "d:alice:bob", 1, "m1"));
    await d.notify(note("bob", "d:alice:bob", 2, "m2")); // waits for the 60 s window
    apns.answers.push(APNS.unavailable, APNS.unavailable);
    await d.notify(note("carol", "d:alice:carol", 1, "c1")); // fails, waits for its retry
    await waitFor("first pushes, carol's waiting for its retry", () => toWebhook(laptop).length === 1 && d.stats().retried === 1);
    await d.stop();
    expect(toWebhook(laptop)).toHaveLength(2);
    expect(toWebhook(laptop)[1]!.body.body).toBe("(2 new messages) m2");
    expect(toApns(phone)).toHaveLength(2); // one final attempt, no more
    expect(warnings.some((w) => w.msg.startsWith("push given up") && w.fields.stopping === true)).toBe(true);
    await d.notify(note("bob", "d:alice:bob", 3, "m3"));
    await quiet();
    expect(toWebhook(laptop)).toHaveLength(2);
    expect(d.stats().pending).toBe(0);
  });
});
