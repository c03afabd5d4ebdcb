import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { MAX_PRESENCE_IDS, PresenceAccess, type Contacts } from "./presence-access.js";

/** What ListContacts answers, from conversations and hidden users the test changes; counts the queries. */
function fakeDirectory() {
  const conversations: string[][] = [];
  const hiding = new Set<string>();
  let queries = 0;
  return {
    conversations,
    hiding,
    queries: () => queries,
    load: async (userId: string): Promise<Contacts> => {
      queries++;
      const ids = new Set([userId, ...conversations.filter((c) => c.includes(userId)).flat()]);
      return { userIds: [...ids], hiddenUserIds: [...ids].filter((id) => hiding.has(id)) };
    },
  };
}

const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => (e instanceof ChatError ? ErrorCode[e.code] : String(e)));

describe("PresenceAccess", () => {
  it("lets a user see contacts only, refuses the whole request for any stranger, and hides those who hide", async () => {
    const dir = fakeDirectory();
    dir.conversations.push(["ann", "bob"], ["ann", "cat", "dan"]);
    dir.hiding.add("dan");
    const access = new PresenceAccess(dir.load, { ttlMs: 30_000, maxEntries: 10 });
    expect(await access.hiddenAmong("ann", ["bob", "cat", "dan"])).toEqual(["dan"]);
    expect(await codeOf(access.hiddenAmong("ann", ["bob", "eve"]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(access.hiddenAmong("bob", ["cat"]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    // Hiding one's presence from others never hides it from oneself.
    expect(await access.hiddenAmong("dan", ["dan", "ann"])).toEqual([]);
    expect(await codeOf(access.hiddenAmong("ann", Array.from({ length: MAX_PRESENCE_IDS + 1 }, () => "bob")))).toBe("ERROR_CODE_INVALID_ARGUMENT");
  });

  it("asks the store once per user while the entry is fresh; a removal made elsewhere shows after the TTL", async () => {
    let now = 0;
    const dir = fakeDirectory();
    dir.conversations.push(["ann", "bob"]);
    const access = new PresenceAccess(dir.load, { ttlMs: 1_000, maxEntries: 10, now: () => now });
    await Promise.all([access.hiddenAmong("ann", ["bob"]), access.hiddenAmong("ann", ["bob"])]);
    await access.hiddenAmong("ann", ["bob"]);
    expect(dir.queries()).toBe(1);
    // A change chat never heard of (a lost signal) shows once the entry is old.
    dir.conversations.length = 0;
    now = 999;
    expect(await access.hiddenAmong("ann", ["bob"])).toEqual([]);
    now = 1_000;
    expect(await codeOf(access.hiddenAmong("ann", ["bob"]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(dir.queries()).toBe(2);
  });

  it("decides a refusal on fresh data: a contact made elsewhere a moment ago is seen at once", async () => {
    const dir = fakeDirectory();
    dir.conversations.push(["ann", "bob"]);
    const access = new PresenceAccess(dir.load, { ttlMs: 30_000, maxEntries: 10 });
    await access.hiddenAmong("ann", ["bob"]);
    dir.conversations.push(["ann", "cat"]);
    expect(await access.hiddenAmong("ann", ["bob", "cat"])).toEqual([]);
    expect(dir.queries()).toBe(2);
    // And the fresh answer is kept.
    await access.hiddenAmong("ann", ["cat"]);
    expect(dir.queries()).toBe(2);
  });

  it("sees a membership change at once for the users it names", async () => {
    const dir = fakeDirectory();
    dir.conversations.push(["ann", "bob"]);
    const access = new PresenceAccess(dir.load, { ttlMs: 30_000, maxEntries: 10 });
    await access.hiddenAmong("ann", ["bob"]);
    await access.hiddenAmong("bob", ["ann"]);
    dir.conversations.length = 0;
    access.forgetUsers(["ann", "bob"]);
    expect(await codeOf(access.hiddenAmong("ann", ["bob"]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(access.hiddenAmong("bob", ["ann"]))).toBe("ERROR_CODE_PERMISSION_DENIED");
  });

  it("sees a privacy change at once in every entry that names the user, even one still loading", async () => {
    const dir = fakeDirectory();
    dir.conversations.push(["ann", "dan"], ["bob", "dan"], ["cat", "eve"]);
    const access = new PresenceAccess(dir.load, { ttlMs: 30_000, maxEntries: 10 });
    await access.hiddenAmong("ann", ["dan"]);
    await access.hiddenAmong("cat", ["eve"]);
    // bob's entry is loading, with dan not hiding yet, when the change arrives.
    const loading = access.hiddenAmong("bob", ["dan"]);
    dir.hiding.add("dan");
    access.forgetContactsOf("dan");
    expect(await loading).toEqual([]);
    await Promise.resolve();
    expect(await access.hiddenAmong("ann", ["dan"])).toEqual(["dan"]);
    expect(await access.hiddenAmong("bob", ["dan"])).toEqual(["dan"]);
    // cat's entry does not name dan: it stays.
    const before = dir.queries();
    await access.hiddenAmong("cat", ["eve"]);
    expect(dir.queries()).toBe(before);
  });

  it("keeps at most maxEntries users, the least recently used going first", async () => {
    const dir = fakeDirectory();
    const access = new PresenceAccess(dir.load, { ttlMs: 30_000, maxEntries: 2 });
    for (const u of ["ann", "bob", "ann", "cat"]) await access.hiddenAmong(u, [u]);
    expect(access.size).toBe(2);
    const before = dir.queries();
    await access.hiddenAmong("ann", ["ann"]);
    expect(dir.queries()).toBe(before);
    await access.hiddenAmong("bob", ["bob"]);
    expect(dir.queries()).toBe(before + 1);
  });

  it("does not keep a failed load", async () => {
    let fail = true;
    const access = new PresenceAccess(async (u) => {
      if (fail) throw new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, "store down");
      return { userIds: [u, "bob"], hiddenUserIds: [] };
    }, { ttlMs: 30_000, maxEntries: 10 });
    expect(await codeOf(access.hiddenAmong("ann", ["bob"]))).toBe("ERROR_CODE_UNAVAILABLE");
    fail = false;
    expect(await access.hiddenAmong("ann", ["bob"])).toEqual([]);
  });
});
