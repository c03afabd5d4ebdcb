import { beforeEach, afterEach, expect, it } from "vitest";
import type { ProviderName } from "../../internal/notifier/provider.js";
import type { TokenStore } from "../../internal/notifier/token-store.js";

export interface StoreHarness {
  store: TokenStore;
  /** Closes the store and opens it again on the same data (durable stores only). */
  reopen?: () => Promise<TokenStore>;
  /** Drops whatever the harness created (files, tables). */
  cleanup?: () => Promise<void>;
}

const sorted = <T extends { deviceId: string }>(xs: T[]) => [...xs].sort((a, b) => a.deviceId.localeCompare(b.deviceId));

/**
 * The TokenStore contract, written once and run against every implementation
 * (memory and file always, PostgreSQL when a server is configured).
 */
export function tokenStoreBehaviour(open: () => Promise<StoreHarness>): void {
  let h: StoreHarness;
  let store: TokenStore;
  beforeEach(async () => {
    h = await open();
    store = h.store;
  });
  afterEach(async () => {
    await store.close();
    await h.cleanup?.();
  });

  it("lists what was registered, per user; an unknown user has no devices", async () => {
    await store.register("bob", "phone", "apns", "apns-1");
    await store.register("bob", "tablet", "fcm", "fcm-1");
    await store.register("carol", "laptop", "webhook", "hook-1");
    expect(sorted(await store.listForUser("bob"))).toEqual([
      { deviceId: "phone", provider: "apns", token: "apns-1" },
      { deviceId: "tablet", provider: "fcm", token: "fcm-1" },
    ]);
    expect(await store.listForUser("carol")).toEqual([{ deviceId: "laptop", provider: "webhook", token: "hook-1" }]);
    expect(await store.listForUser("nobody")).toEqual([]);
  });

  it("registering a device again replaces its token (and provider)", async () => {
    await store.register("bob", "phone", "apns", "apns-1");
    await store.register("bob", "phone", "apns", "apns-1"); // idempotent
    await store.register("bob", "phone", "fcm", "fcm-2");
    expect(await store.listForUser("bob")).toEqual([{ deviceId: "phone", provider: "fcm", token: "fcm-2" }]);
    // The replaced token is gone: removing it touches nothing.
    await store.removeToken("apns", "apns-1");
    expect(await store.listForUser("bob")).toHaveLength(1);
  });

  it("a token registered on another device or account moves there", async () => {
    await store.register("bob", "phone", "fcm", "shared");
    await store.register("carol", "phone", "fcm", "shared"); // the phone changed hands
    expect(await store.listForUser("bob")).toEqual([]);
    expect(await store.listForUser("carol")).toEqual([{ deviceId: "phone", provider: "fcm", token: "shared" }]);
    await store.register("carol", "phone-2", "fcm", "shared");
    expect(await store.listForUser("carol")).toEqual([{ deviceId: "phone-2", provider: "fcm", token: "shared" }]);
    // The same string under another provider is another token.
    await store.register("dave", "laptop", "webhook", "shared");
    expect(await store.listForUser("carol")).toHaveLength(1);
    expect(await store.listForUser("dave")).toHaveLength(1);
  });

  it("unregister forgets one device; unknown devices are fine", async () => {
    await store.register("bob", "phone", "apns", "apns-1");
    await store.register("bob", "tablet", "fcm", "fcm-1");
    await store.unregister("bob", "phone");
    await store.unregister("bob", "never-registered");
    await store.unregister("nobody", "phone");
    expect(await store.listForUser("bob")).toEqual([{ deviceId: "tablet", provider: "fcm", token: "fcm-1" }]);
  });

  it("removeToken drops a dead token wherever it is, only for its provider", async () => {
    await store.register("bob", "phone", "apns", "dead");
    await store.register("bob", "tablet", "fcm", "dead");
    await store.register("carol", "phone", "apns", "alive");
    await store.removeToken("apns", "dead");
    await store.removeToken("apns", "unknown");
    expect(await store.listForUser("bob")).toEqual([{ deviceId: "tablet", provider: "fcm", token: "dead" }]);
    expect(await store.listForUser("carol")).toEqual([{ deviceId: "phone", provider: "apns", token: "alive" }]);
  });

  it("refuses empty ids, empty tokens and unknown providers", async () => {
    await expect(store.register("", "phone", "fcm", "t")).rejects.toThrow(/userId/);
    await expect(store.register("bob", "", "fcm", "t")).rejects.toThrow(/deviceId/);
    await expect(store.register("bob", "phone", "fcm", "")).rejects.toThrow(/token/);
    await expect(store.register("bob", "phone", "gcm" as ProviderName, "t")).rejects.toThrow(/provider/);
    expect(await store.listForUser("bob")).toEqual([]);
  });

  it("concurrent registrations all land", async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) => store.register(`user-${i % 4}`, `device-${i}`, "fcm", `token-${i}`)));
    const all = (await Promise.all([0, 1, 2, 3].map((u) => store.listForUser(`user-${u}`)))).flat();
    expect(all).toHaveLength(40);
  });

  it("keeps every change across a restart (durable stores)", async (ctx) => {
    if (!h.reopen) ctx.skip();
    await store.register("bob", "phone", "apns", "apns-1");
    await store.register("bob", "tablet", "fcm", "fcm-1");
    await store.register("carol", "laptop", "webhook", "hook-1");
    await store.unregister("bob", "tablet");
    await store.removeToken("webhook", "hook-1");
    await store.register("dave", "💻", "webhook", "hook-ünïcode");
    store = await h.reopen!();
    expect(await store.listForUser("bob")).toEqual([{ deviceId: "phone", provider: "apns", token: "apns-1" }]);
    expect(await store.listForUser("carol")).toEqual([]);
    expect(await store.listForUser("dave")).toEqual([{ deviceId: "💻", provider: "webhook", token: "hook-ünïcode" }]);
  });
}
