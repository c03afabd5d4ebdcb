/**
 * Pushes that know (R11): a push is held while another device of the user is in use and
 * dropped when that device reads the message; after a push went out, a read on the desktop
 * sends the phones a background update with the new unread count. The notifier talks to
 * local FCM (HTTPS) and APNs (HTTP/2 + TLS) servers that check every request as the real
 * services do, and to a webhook relay.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PushProvider } from "../../internal/client/client.js";
import { FakeApnsServer, FakeFcmServer, FakeWebhookServer, selfSignedCert } from "../support/notifier-fakes.js";
import { device, newUser, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

const HOLD_MS = 3_000;
/** Short, so the test sees bob become idle in seconds. */
const ACTIVE_MS = 4_000;
let c: TestCluster;
let fcm: FakeFcmServer;
let apns: FakeApnsServer;
let hook: FakeWebhookServer;
let secrets: string;

beforeAll(async () => {
  const tls = selfSignedCert();
  [fcm, apns, hook] = await Promise.all([FakeFcmServer.start(tls), FakeApnsServer.start(tls), FakeWebhookServer.start()]);
  secrets = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-push-e2e-"));
  const file = (name: string, content: string) => {
    fs.writeFileSync(path.join(secrets, name), content, { mode: 0o600 });
    return path.join(secrets, name);
  };
  c = await startCluster({
    FCM_SERVICE_ACCOUNT_FILE: file("service-account.json", JSON.stringify(fcm.serviceAccount)),
    FCM_ENDPOINT: fcm.url,
    APNS_KEY_FILE: file("AuthKey.p8", apns.privateKey),
    APNS_KEY_ID: apns.keyId,
    APNS_TEAM_ID: apns.teamId,
    APNS_BUNDLE_ID: apns.bundleId,
    APNS_ENDPOINT: apns.url,
    PUSH_CA_FILE: file("ca.pem", tls.cert),
    PUSH_WEBHOOK_URL: hook.url,
    PUSH_WEBHOOK_SECRET: hook.secret,
    // No collapse window: only the hold can keep a push back here.
    PUSH_COLLAPSE_WINDOW_MS: "0",
    PUSH_HOLD_MS: String(HOLD_MS),
    PUSH_HOLD_ACTIVE_MS: String(ACTIVE_MS),
    PUSH_READ_UPDATE_WINDOW_MS: "500",
  });
});
afterAll(async () => {
  await c?.stop();
  await Promise.all([fcm?.close(), apns?.close(), hook?.close()]);
  if (secrets) fs.rmSync(secrets, { recursive: true, force: true });
});
beforeEach(() => warnOnFailure(() => c));

/** What reached each local provider for one device token, as { seq of an alert | the reads of an update }. */
function pushesTo(tokens: { fcm: string; apns: string; webhook: string }) {
  const fcmSends = () => fcm.sends.filter((s) => s.body?.message?.token === tokens.fcm).map((s) => s.body.message);
  const apnsSends = () => apns.requests.filter((r) => r.path === `/3/device/${tokens.apns}`);
  const hookSends = () => hook.requests.filter((r) => r.body?.token === tokens.webhook).map((r) => r.body);
  return {
    alerts: () => ({
      fcm: fcmSends().filter((m) => m.notification).map((m) => Number(m.data.seq)),
      apns: apnsSends().filter((r) => r.headers["apns-push-type"] === "alert").map((r) => Number(r.body.seq)),
      webhook: hookSends().filter((b) => !b.background).map((b) => Number(b.data.seq)),
    }),
    updates: () => ({
      fcm: fcmSends().filter((m) => !m.notification).map((m) => ({ data: m.data, apns: m.apns, android: m.android })),
      apns: apnsSends().filter((r) => r.headers["apns-push-type"] === "background").map((r) => ({ priority: r.headers["apns-priority"], body: r.body })),
      webhook: hookSends().filter((b) => b.background).map((b) => b.data),
    }),
  };
}

describe("pushes that know a message was read", () => {
  it("a read on the desktop within the hold means no push; after a push went out, a read sends the phones the new unread count", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice, "alice-laptop");
    const conv = await a.client.openDirect(bob.username);
    // Bob's phones register their tokens and go to sleep (no live session).
    const tokens = { fcm: `fcm-${bob.userId}`, apns: Buffer.from(bob.userId).toString("hex").padEnd(64, "0"), webhook: `hook-${bob.userId}` };
    for (const [id, provider, token] of [["bob-android", PushProvider.PUSH_PROVIDER_FCM, tokens.fcm], ["bob-iphone", PushProvider.PUSH_PROVIDER_APNS, tokens.apns], ["bob-relay", PushProvider.PUSH_PROVIDER_WEBHOOK, tokens.webhook]] as const) {
      const phone = await device(c, bob, id);
      await phone.client.registerPushToken(provider, token);
      await phone.close();
    }
    const desktop = await device(c, bob, "bob-desktop");
    const pushes = pushesTo(tokens);

    // The desktop is connected but idle: the phones are pushed at once (this also shows the
    // phones' sessions are gone: a device with a live session gets no push).
    const m1 = await a.client.send(conv.id, "first, while bob is away from the desktop");
    await waitFor("the alert of m1 on every phone", () => {
      const p = pushes.alerts();
      return p.fcm.includes(m1.seq) && p.apns.includes(m1.seq) && p.webhook.includes(m1.seq);
    }, { seen: () => JSON.stringify(pushes.alerts()) });
    expect(pushes.updates()).toEqual({ fcm: [], apns: [], webhook: [] });

    // Bob reads it on the desktop: each phone gets one background update with the unread count.
    await waitFor("m1 on the desktop", () => desktop.in(conv.id).some((m) => m.seq === m1.seq));
    await desktop.client.markRead(conv.id, m1.seq);
    const reads = [{ conversation_id: conv.id, read_seq: m1.seq, unread: 0 }];
    await waitFor("the read update on every phone", () => {
      const u = pushes.updates();
      return u.fcm.length > 0 && u.apns.length > 0 && u.webhook.length > 0;
    }, { seen: () => JSON.stringify(pushes.updates()) });
    const u = pushes.updates();
    // FCM: a data message (no notification block), an APNs background push for Apple devices.
    expect(u.fcm).toEqual([{ data: { event: "read", reads: JSON.stringify(reads) }, android: { priority: "normal" }, apns: { headers: { "apns-push-type": "background", "apns-priority": "5" }, payload: { aps: { "content-available": 1 } } } }]);
    expect(u.apns).toEqual([{ priority: "5", body: { aps: { "content-available": 1 }, event: "read", reads: JSON.stringify(reads) } }]);
    expect(u.webhook).toEqual([{ event: "read", reads: JSON.stringify(reads) }]);

    // Bob is at the desktop (he just read, and he types): alice's next message is held, and
    // the desktop reads it within the hold, so no phone hears of it.
    await desktop.client.typing(conv.id);
    const m2 = await a.client.send(conv.id, "second, bob is at the desktop now");
    await waitFor("m2 on the desktop", () => desktop.in(conv.id).some((m) => m.seq === m2.seq));
    await desktop.client.markRead(conv.id, m2.seq);
    let lastUse = Date.now();
    // Once bob has been idle past PUSH_HOLD_ACTIVE_MS (and m2's hold is long over), m3 is
    // pushed without a hold; its push also shows that m2's never went.
    await waitFor("bob idle", () => Date.now() > lastUse + ACTIVE_MS + 500);
    const m3 = await a.client.send(conv.id, "third, bob is away");
    const alerted = (seq: number) => () => {
      const p = pushes.alerts();
      return p.fcm.includes(seq) && p.apns.includes(seq) && p.webhook.includes(seq);
    };
    await waitFor("the alert of m3 on every phone", alerted(m3.seq), { seen: () => JSON.stringify(pushes.alerts()) });

    // A send is a use too: bob answers from the desktop, and the desktop reads alice's next
    // message within the hold.
    await desktop.client.send(conv.id, "back at my desk");
    const m4 = await a.client.send(conv.id, "fourth");
    await waitFor("m4 on the desktop", () => desktop.in(conv.id).some((m) => m.seq === m4.seq));
    await desktop.client.markRead(conv.id, m4.seq);
    lastUse = Date.now();
    await waitFor("bob idle again", () => Date.now() > lastUse + ACTIVE_MS + 500);
    const m5 = await a.client.send(conv.id, "fifth, bob is away again");
    await waitFor("the alert of m5 on every phone", alerted(m5.seq), { seen: () => JSON.stringify(pushes.alerts()) });
    expect(pushes.alerts()).toEqual({ fcm: [m1.seq, m3.seq, m5.seq], apns: [m1.seq, m3.seq, m5.seq], webhook: [m1.seq, m3.seq, m5.seq] });
    // The fake FCM and APNs checked every request (JWTs, headers, background push rules).
    expect([...fcm.problems, ...apns.problems]).toEqual([]);
    await desktop.close();
    await a.close();
  });
});
