/**
 * Pushes that know: a push is held while another device of the user is in use and
 * dropped when a device reads the message meanwhile; a read on one device updates
 * what the others show (one background update per user per window). A scripted
 * in-process provider, virtual time.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { DispatcherOptions, Notification } from "./dispatcher.js";
import type { PushMessage } from "./provider.js";
import { scriptedDispatcher, settle, stopScriptedDispatchers, waitFor, type ScriptedProvider } from "../../test/support/notifier-fakes.js";

afterEach(stopScriptedDispatchers);

const HOLD_MS = 3_000;
const ACTIVE_MS = 10_000;
const UPDATE_WINDOW_MS = 1_000;

const rig = (opts: Partial<DispatcherOptions> = {}) =>
  scriptedDispatcher({ collapseWindowMs: 0, holdMs: HOLD_MS, holdActiveMs: ACTIVE_MS, readUpdateWindowMs: UPDATE_WINDOW_MS, ...opts });

const note = (conversationId: string, seq: number, text: string, extra: Partial<Notification> = {}): Notification => ({
  userId: "bob", conversationId, seq, senderName: "alice", conversationTitle: "", text, muted: false, excludeDeviceIds: ["desktop"], ...extra,
});
const alerts = (p: ScriptedProvider) => p.sent.filter((m) => !m.background);
const updates = (p: ScriptedProvider) => p.sent.filter((m) => m.background);
const readsOf = (m: PushMessage) => JSON.parse(m.data["reads"]!) as Array<{ conversation_id: string; read_seq: number; unread: number }>;

describe("holding a push while another device is in use", () => {
  it("holds the push while a device was used recently and drops it when a device reads the message meanwhile", async () => {
    const { d, clock, webhook, tokens } = rig();
    await tokens.register("bob", "phone", "webhook", "t-phone");
    d.active("bob");
    await d.notify(note("c", 5, "lunch?"));
    await settle();
    expect(webhook.sent).toEqual([]);
    await clock.advance(HOLD_MS - 1);
    expect(webhook.sent).toEqual([]);
    d.read("bob", "c", 5);
    await clock.advance(HOLD_MS);
    expect(webhook.sent).toEqual([]);
    expect(d.stats()).toMatchObject({ held: 1, readDropped: 1, sent: 0, pending: 0 });
  });

  it("sends the held push at the end of the hold when nobody read it; a read of an earlier message does not drop it", async () => {
    const { d, clock, webhook, tokens } = rig();
    await tokens.register("bob", "phone", "webhook", "t-phone");
    d.active("bob");
    await d.notify(note("c", 4, "one"));
    await d.notify(note("c", 5, "two"));
    d.read("bob", "c", 4);
    await clock.advance(HOLD_MS - 1);
    expect(webhook.sent).toEqual([]);
    await clock.advance(1);
    await waitFor("the held push", () => webhook.sent.length === 1);
    // One unread message left of the two: the count says so.
    expect(webhook.sent[0]).toMatchObject({ body: "two", data: { seq: "5", count: "1" } });
  });

  it("pushes at once when no device was used within holdActiveMs, or when the hold is off", async () => {
    const { d, clock, webhook, tokens } = rig();
    await tokens.register("bob", "phone", "webhook", "t-phone");
    d.active("bob");
    await clock.advance(ACTIVE_MS + 1);
    await d.notify(note("c", 1, "idle desktop"));
    await waitFor("pushed at once", () => webhook.sent.length === 1);
    expect(d.stats().held).toBe(0);

    const off = rig({ holdMs: 0 });
    await off.tokens.register("bob", "phone", "webhook", "t-phone");
    off.d.active("bob");
    await off.d.notify(note("c", 1, "no hold"));
    await waitFor("pushed at once without a hold", () => off.webhook.sent.length === 1);
  });

  it("drops the push of a message whose read arrived first", async () => {
    const { d, clock, webhook, tokens } = rig();
    await tokens.register("bob", "phone", "webhook", "t-phone");
    d.read("bob", "c", 5);
    await d.notify(note("c", 5, "already read"));
    await clock.advance(HOLD_MS);
    expect(webhook.sent).toEqual([]);
    expect(d.stats().readDropped).toBe(1);
  });

  it("devices with a live session get no push; the others do", async () => {
    const { d, clock, webhook, tokens } = rig({ holdMs: 0 });
    await tokens.register("bob", "phone", "webhook", "t-phone");
    await tokens.register("bob", "desktop", "webhook", "t-desktop");
    await d.notify(note("c", 1, "hi"));
    await waitFor("the phone's push", () => webhook.sent.length === 1);
    await clock.advance(1);
    expect(webhook.sent.map((m) => m.token)).toEqual(["t-phone"]);
  });
});

describe("updating the other devices after a read", () => {
  it("sends each device that shows a notification one background update per window with the unread counts", async () => {
    const { d, clock, webhook, fcm, tokens } = rig({ holdMs: 0 });
    await tokens.register("bob", "phone", "webhook", "t-phone");
    await tokens.register("bob", "tablet", "fcm", "t-tablet");
    await d.notify(note("c1", 3, "first"));
    await d.notify(note("c2", 7, "second"));
    await waitFor("the alerts", () => alerts(webhook).length === 2 && alerts(fcm).length === 2);
    await clock.advance(1);

    d.read("bob", "c1", 3);
    d.read("bob", "c2", 5);
    d.read("bob", "c2", 6);
    await settle();
    expect(updates(webhook)).toEqual([]);
    await clock.advance(UPDATE_WINDOW_MS);
    await waitFor("one update per device", () => updates(webhook).length === 1 && updates(fcm).length === 1);
    for (const u of [updates(webhook)[0]!, updates(fcm)[0]!]) {
      expect(u).toMatchObject({ title: "", body: "", collapseKey: "", data: { event: "read" } });
      expect(readsOf(u)).toEqual([{ conversation_id: "c1", read_seq: 3, unread: 0 }, { conversation_id: "c2", read_seq: 6, unread: 1 }]);
    }

    // The rest of c2 read: one more update. c1 shows nothing any more: a read there updates nobody.
    d.read("bob", "c2", 7);
    d.read("bob", "c1", 3);
    await clock.advance(UPDATE_WINDOW_MS);
    await waitFor("the second update", () => updates(webhook).length === 2);
    expect(readsOf(updates(webhook)[1]!)).toEqual([{ conversation_id: "c2", read_seq: 7, unread: 0 }]);
    d.read("bob", "c2", 7);
    await clock.advance(UPDATE_WINDOW_MS * 2);
    expect(updates(webhook)).toHaveLength(2);
    expect(updates(fcm)).toHaveLength(2);
    expect(d.stats().readUpdates).toBe(4);
  });

  it("a read that overtakes an alert in flight is owed to the device as soon as the provider accepts the alert", async () => {
    const { d, clock, webhook, tokens } = rig({ holdMs: 0 });
    await tokens.register("bob", "phone", "webhook", "t-phone");
    let accept!: () => void;
    const accepted = new Promise<void>((r) => (accept = r));
    webhook.send = async (msg) => {
      webhook.sent.push(msg);
      if (!msg.background) await accepted;
      return { kind: "ok" };
    };
    await d.notify(note("c", 2, "in flight"));
    await waitFor("the alert in flight", () => webhook.sent.length === 1);
    d.read("bob", "c", 2);
    accept();
    await settle();
    await clock.advance(UPDATE_WINDOW_MS);
    await waitFor("the update", () => updates(webhook).length === 1);
    expect(readsOf(updates(webhook)[0]!)).toEqual([{ conversation_id: "c", read_seq: 2, unread: 0 }]);
  });

  it("an update waiting for the device's rate limit absorbs the next one's reads", async () => {
    const { d, clock, webhook, tokens } = rig({ holdMs: 0, perDeviceRatePerMinute: 2 });
    await tokens.register("bob", "phone", "webhook", "t-phone");
    await d.notify(note("c1", 1, "one"));
    await d.notify(note("c2", 1, "two"));
    await waitFor("both alerts", () => alerts(webhook).length === 2);
    d.read("bob", "c1", 1);
    await clock.advance(UPDATE_WINDOW_MS);
    d.read("bob", "c2", 1);
    await clock.advance(UPDATE_WINDOW_MS);
    expect(updates(webhook)).toEqual([]); // the bucket is empty: both wait
    await clock.advance(60_000);
    await waitFor("one merged update", () => updates(webhook).length === 1);
    await clock.advance(60_000);
    expect(updates(webhook)).toHaveLength(1);
    expect(readsOf(updates(webhook)[0]!)).toEqual([{ conversation_id: "c1", read_seq: 1, unread: 0 }, { conversation_id: "c2", read_seq: 1, unread: 0 }]);
  });

  it("a device that showed nothing of the conversation gets no update; muted or held pushes never count as shown", async () => {
    const { d, clock, webhook, tokens } = rig();
    await tokens.register("bob", "phone", "webhook", "t-phone");
    d.active("bob");
    await d.notify(note("c", 1, "held"));
    d.read("bob", "c", 1);
    await d.notify(note("m", 1, "muted", { muted: true }));
    d.read("bob", "m", 1);
    await clock.advance(HOLD_MS + UPDATE_WINDOW_MS);
    expect(webhook.sent).toEqual([]);
  });
});
