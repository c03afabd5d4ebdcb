/**
 * Dispatcher rules that need exact control over provider outcomes: a scripted
 * in-process provider, virtual time. (The same rules against real provider
 * servers are in dispatcher.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../config/env.js";
import { PushDispatcher, type DispatcherOptions, type Notification } from "./dispatcher.js";
import type { ProviderName, PushMessage, PushProvider, PushResult } from "./provider.js";
import { MemoryTokenStore } from "./token-store-memory.js";
import type { TokenStore } from "./token-store.js";
import { ScriptedProvider, scriptedDispatcher, settle, stopScriptedDispatchers, waitFor } from "../../test/support/notifier-fakes.js";

afterEach(stopScriptedDispatchers);
const rig = scriptedDispatcher;

const note = (conversationId: string, seq: number, text: string, extra: Partial<Notification> = {}): Notification => ({
  userId: "bob", conversationId, seq, senderName: "alice", conversationTitle: "", text, muted: false, ...extra,
});

describe("push dispatcher rules", () => {
  it("backs off exponentially with full jitter, capped at maxBackoffMs", async () => {
    const { d, tokens, clock, webhook } = rig({ baseBackoffMs: 500, maxBackoffMs: 2_000, maxAttempts: 6, random: () => 0.999 });
    await tokens.register("bob", "laptop", "webhook", "t1");
    for (let i = 0; i < 5; i++) webhook.script.push({ kind: "retry", reason: "503" });
    await d.notify(note("c", 1, "x"));
    for (let i = 1; i <= 5; i++) {
      await waitFor(`backoff ${i}`, () => clock.sleeps.length === i);
      await clock.advance(clock.sleeps.at(-1)!);
    }
    await waitFor("sent", () => d.stats().sent === 1);
    expect(clock.sleeps.map((s) => Math.round(s))).toEqual([500, 999, 1998, 1998, 1998]);
    expect(webhook.sent).toHaveLength(6);
  });

  it("a provider that throws is retried like a transport failure", async () => {
    const { d, tokens, clock, webhook } = rig();
    await tokens.register("bob", "laptop", "webhook", "t1");
    webhook.script.push("throw");
    await d.notify(note("c", 1, "x"));
    await waitFor("backoff", () => clock.sleeps.length === 1);
    await clock.advance(1_000);
    await waitFor("sent", () => d.stats().sent === 1);
    expect(d.stats()).toMatchObject({ retried: 1, failed: 0 });
  });

  it("a permanent failure is logged once and not retried", async () => {
    const { d, tokens, webhook, warnings } = rig();
    await tokens.register("bob", "laptop", "webhook", "t1");
    webhook.script.push({ kind: "failed", reason: "webhook 400" });
    await d.notify(note("c", 1, "x"));
    await waitFor("failed", () => d.stats().failed === 1);
    await settle();
    expect(webhook.sent).toHaveLength(1);
    expect(warnings).toEqual([{ msg: "push failed", fields: expect.objectContaining({ reason: "webhook 400", provider: "webhook", device: "laptop" }) }]);
  });

  it("excluded devices follow the latest message of a collapsed push", async () => {
    const { d, tokens, clock, webhook, fcm } = rig({ collapseWindowMs: 1_000 });
    await tokens.register("bob", "laptop", "webhook", "t1");
    await tokens.register("bob", "phone", "fcm", "t2");
    await d.notify(note("c", 1, "m1"));
    await waitFor("both", () => webhook.sent.length === 1 && fcm.sent.length === 1);
    // m2 was sent from bob's phone: the push that carries it must not go to the phone.
    await d.notify(note("c", 2, "m2", { excludeDeviceIds: ["phone"] }));
    await clock.advance(1_000);
    await waitFor("laptop", () => webhook.sent.length === 2);
    await settle();
    expect(fcm.sent).toHaveLength(1);
    expect(webhook.sent[1]!.body).toBe("(2 new messages) m2");
  });

  it("withdraws a push of a message deleted for everyone that is waiting for its collapse window, and nothing else", async () => {
    const { d, tokens, clock, webhook } = rig({ collapseWindowMs: 1_000 });
    await tokens.register("bob", "laptop", "webhook", "t1");
    await d.notify(note("c", 1, "m1"));
    await waitFor("first", () => webhook.sent.length === 1);
    await d.notify(note("c", 2, "secret m2"));
    // m2 waits for the end of the window: deleted meanwhile, it never goes out.
    expect(d.withdraw(["bob"], "c", 2)).toBe(1);
    await clock.advance(1_000);
    await settle();
    expect(webhook.sent.map((m) => m.body)).toEqual(["m1"]);
    // Withdrawing another seq, or a user with nothing pending, drops nothing.
    expect(d.withdraw(["bob", "carol"], "c", 7)).toBe(0);
    await d.notify(note("c", 3, "m3"));
    await waitFor("third", () => webhook.sent.length === 2);
    expect(webhook.sent[1]!.body).toContain("m3");
  });

  it("the count starts again after the conversation was quiet for countResetMs", async () => {
    const { d, tokens, clock, webhook } = rig({ collapseWindowMs: 1_000, countResetMs: 10_000 });
    await tokens.register("bob", "laptop", "webhook", "t1");
    await d.notify(note("c", 1, "m1"));
    await clock.advance(3_000);
    await d.notify(note("c", 2, "m2")); // window over: at once, count 2
    await clock.advance(11_000);
    await d.notify(note("c", 3, "m3")); // quiet for 11 s: count 1
    await waitFor("three", () => webhook.sent.length === 3);
    expect(webhook.sent.map((m) => m.body)).toEqual(["m1", "(2 new messages) m2", "m3"]);
    expect(webhook.sent.map((m) => m.data.count)).toEqual(["1", "2", "1"]);
  });

  it("one device's rate limit does not hold back another device", async () => {
    const { d, tokens, webhook, fcm } = rig({ perDeviceRatePerMinute: 1 });
    await tokens.register("bob", "laptop", "webhook", "t1");
    await d.notify(note("c1", 1, "x"));
    await d.notify(note("c2", 1, "y"));
    await waitFor("one", () => webhook.sent.length === 1 && d.stats().deferred === 1);
    await tokens.register("bob", "phone", "fcm", "t2");
    await d.notify(note("c3", 1, "z"));
    await waitFor("phone", () => fcm.sent.length === 1);
    expect(webhook.sent).toHaveLength(1);
  });

  it("previewLength 0 shows no message text; white space is flattened in previews", async () => {
    const hidden = rig({ previewLength: 0, collapseWindowMs: 1_000 });
    await hidden.tokens.register("bob", "laptop", "webhook", "t1");
    await hidden.d.notify(note("c", 1, "secret plans"));
    await hidden.d.notify(note("c", 2, "more secrets"));
    await hidden.d.notify(note("c", 3, "even more"));
    await hidden.clock.advance(1_000);
    await waitFor("two", () => hidden.webhook.sent.length === 2);
    expect(hidden.webhook.sent.map((m) => m.body)).toEqual(["New message", "3 new messages"]);

    const shown = rig();
    await shown.tokens.register("bob", "laptop", "webhook", "t1");
    await shown.d.notify(note("c", 1, "  line one\n\n\tline two  "));
    await waitFor("one", () => shown.webhook.sent.length === 1);
    expect(shown.webhook.sent[0]!.body).toBe("line one line two");
  });

  it("a token store failure is logged and counted, not thrown at the caller", async () => {
    const broken: TokenStore = {
      register: async () => {},
      unregister: async () => {},
      listForUser: async () => {
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      },
      removeToken: async () => {},
      close: async () => {},
    };
    const { d, warnings } = rig({}, broken);
    await expect(d.notify(note("c", 1, "x"))).resolves.toBeUndefined();
    await waitFor("counted", () => d.stats().failed === 1);
    expect(warnings[0]!.msg).toBe("push token lookup failed; push not sent");
  });

  it("a token of a provider this installation did not configure is reported, the others still go", async () => {
    const { d, tokens, webhook, warnings } = rig();
    await tokens.register("bob", "old-iphone", "apns", "t0");
    await tokens.register("bob", "laptop", "webhook", "t1");
    await d.notify(note("c", 1, "x"));
    await waitFor("sent", () => webhook.sent.length === 1);
    expect(d.stats()).toMatchObject({ failed: 1 });
    expect(warnings[0]!.msg).toBe("no push provider configured for a registered token");
  });

  it("stop() gives up on what does not finish within the grace period, with a logged count", async () => {
    const { d, tokens, webhook, warnings } = rig();
    await tokens.register("bob", "laptop", "webhook", "t1");
    webhook.script.push("hang");
    await d.notify(note("c1", 1, "x"));
    await d.notify(note("c2", 1, "y")); // queued behind the hanging request
    await waitFor("in flight", () => webhook.sent.length === 1);
    const t0 = Date.now();
    await d.stop(50);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(warnings.at(-1)).toEqual({ msg: "push dispatcher stopped with pushes not sent", fields: { pending: 1, graceMs: 50 } });
  });

  it("refuses bad options at construction", () => {
    const base = { providers: new Map<ProviderName, PushProvider>(), tokens: new MemoryTokenStore() };
    expect(() => new PushDispatcher({ ...base, maxAttempts: 0 })).toThrow(ConfigError);
    expect(() => new PushDispatcher({ ...base, collapseWindowMs: -1 })).toThrow(ConfigError);
    expect(() => new PushDispatcher({ ...base, perDeviceRatePerMinute: 0 })).toThrow(ConfigError);
    expect(() => new PushDispatcher({ ...base, previewLength: 1.5 })).toThrow(ConfigError);
    expect(() => new PushDispatcher({ ...base, baseBackoffMs: 5_000, maxBackoffMs: 1_000 })).toThrow(ConfigError);
    expect(() => new PushDispatcher({ ...base, providers: new Map<ProviderName, PushProvider>([["fcm", new ScriptedProvider("apns")]]) })).toThrow(/says it is apns/);
  });
});
