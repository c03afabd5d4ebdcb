import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { GroupQuota } from "./quotas.js";

/** A store of creation times: what CountGroupsCreated answers from the conversations table. */
function fakeStore() {
  const created = new Map<string, number[]>();
  return {
    created,
    count: async (userId: string, sinceMs: number) => (created.get(userId) ?? []).filter((t) => t >= sinceMs).length,
    create: (userId: string, at: number) => async () => {
      // The write takes a while: concurrent admissions must not all count before it lands.
      await new Promise((r) => setTimeout(r, 5));
      created.set(userId, [...(created.get(userId) ?? []), at]);
      return userId;
    },
  };
}

const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => (e instanceof ChatError ? ErrorCode[e.code] : String(e)));

describe("GroupQuota (MAX_GROUPS_PER_DAY)", () => {
  it("refuses the creation past the cap with QUOTA_EXCEEDED, creating nothing, even when the creations arrive at once", async () => {
    let now = 1_000_000_000;
    const store = fakeStore();
    const quota = new GroupQuota(3, store.count, () => now);
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map(() => codeOf(quota.admit("ann", store.create("ann", now)))));
    expect(outcomes).toEqual(["ok", "ok", "ok", "ERROR_CODE_QUOTA_EXCEEDED", "ERROR_CODE_QUOTA_EXCEEDED"]);
    expect(store.created.get("ann")).toHaveLength(3);
    // Another user has their own count.
    expect(await codeOf(quota.admit("ben", store.create("ben", now)))).toBe("ok");
    // A day after the first ones, places are free again.
    now += 24 * 3600 * 1000 + 1;
    expect(await codeOf(quota.admit("ann", store.create("ann", now)))).toBe("ok");
    expect(store.created.get("ann")).toHaveLength(4);
  });

  it("with 0 there is no cap", async () => {
    const store = fakeStore();
    const quota = new GroupQuota(0, store.count);
    for (let i = 0; i < 5; i++) await quota.admit("ann", store.create("ann", Date.now()));
    expect(store.created.get("ann")).toHaveLength(5);
  });
});
