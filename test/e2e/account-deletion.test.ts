import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { refreshTokens } from "../../internal/client/auth.js";
import { authenticate, ErrorCode, type ClientError } from "../../internal/client/client.js";
import { CLOSE } from "../../internal/errors/close-codes.js";
import { cassandraTablesWith, postgresColumnsWith, redisKeysWith, sqliteTablesWith } from "../support/text-search.js";
import { device, newUser, rawSession, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

// Deleting an account (docs/features.md, "Deleting an account") on two edges; E2E_PROFILE picks the profile.
const PASSWORD = "correct horse battery";
/** How long an edge that holds no device of the account may still take a token of it (SESSION_CACHE_MS, the documented bound). */
const SESSION_CACHE_MS = 1_000;
const production = process.env.E2E_PROFILE === "production";

let c: TestCluster;
beforeAll(async () => {
  // The sweep is off: only the deletion itself can close the sockets on the other edge.
  c = await startCluster({ SESSION_CHECK_INTERVAL_MS: "0", SESSION_CACHE_MS: String(SESSION_CACHE_MS) }, { edges: 2, chats: 1 });
});
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: ClientError) => ErrorCode[e.code]);
const [EDGE1, EDGE2] = [() => c.wsUrls[0]!, () => c.wsUrls[1]!];

/** Where a text could still be: every table of the profile's stores (and Redis keys on production). */
async function storesHolding(text: string): Promise<string[]> {
  if (!production) return sqliteTablesWith(path.join(c.dataDir, "sqlite", "meshchat.db"), text);
  // The cluster's own settings first, then the servers' (scripts/servers/env.sh), as its processes read them.
  const env = { ...process.env, ...c.env };
  return [
    ...(await postgresColumnsWith(env.POSTGRES_URL!, text)),
    ...(await cassandraTablesWith(env.CASSANDRA_CONTACT_POINTS!.split(","), env.CASSANDRA_LOCAL_DC!, env.CASSANDRA_KEYSPACE ?? "meshchat", text)).map((t) => `cassandra ${t}`),
    ...(await redisKeysWith(env.REDIS_URL!, env.REDIS_PREFIX!, text)),
  ];
}

describe("deleting an account", () => {
  it("a wrong or missing password is refused, typed, and changes nothing", async () => {
    const ann = await newUser(c, "ann");
    const a = await device(c, ann, undefined, { url: EDGE1() });
    const json = await device(c, ann, undefined, { url: EDGE2(), mode: "json" });
    expect(await codeOf(a.client.deleteAccount("not the password"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(json.client.deleteAccount("not the password", { erase: true }))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(a.client.deleteAccount(""))).toBe("ERROR_CODE_INVALID_ARGUMENT");
    // Still there: both devices work, the password logs in.
    const g = await a.client.createGroup("still here", []);
    await json.client.send(g.id, "hello");
    expect((await authenticate(c.httpUrl, "login", ann.username, PASSWORD)).userId).toBe(ann.userId);
    await Promise.all([a.close(), json.close()]);
  });

  it("disconnects every device on both edges at once, refuses every token issued before (on the other edge within SESSION_CACHE_MS), keeps the messages under a deleted account, and never gives the username to anyone else", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const phone = await device(c, alice, "phone", { url: EDGE1() });
    const ended: string[] = [];
    phone.client.on("error", (e) => ended.push(ErrorCode[e.code] ?? ""));
    // The tablet is on the other edge, a bare binary session: its close code is read as sent.
    const tablet = await rawSession(EDGE2(), alice.token, "tablet");
    // A token signed before the deletion, of another log-in, not connected anywhere.
    const spare = await authenticate(c.httpUrl, "login", alice.username, PASSWORD, "spare");
    const b = await device(c, bob, undefined, { url: EDGE2() });
    const direct = (await phone.client.openDirect(bob.username)).id;
    await phone.client.send(direct, "kept after deletion");
    await waitFor("bob has alice's message", () => b.in(direct).length === 1);

    await phone.client.deleteAccount(PASSWORD);
    await waitFor("the phone told SESSION_ENDED", () => ended.includes("ERROR_CODE_SESSION_ENDED"), { seen: () => ended.join(",") });
    // On the other edge, with its sweep off: only the deletion's EndSessions could close it.
    await waitFor("the tablet closed with 4401", () => tablet.closed() === CLOSE.unauthenticated, { seen: () => String(tablet.closed()) });
    expect(tablet.frames.some((f) => f.kind?.$case === "error" && f.kind.value.code === ErrorCode.ERROR_CODE_SESSION_ENDED)).toBe(true);

    // Every token of before: refused at Hello on both edges (within the bound), at refresh, and the password no longer logs in.
    for (const url of [EDGE1(), EDGE2()]) {
      await waitFor(`the spare token refused on ${url}`, async () => {
        const s = await rawSession(url, spare.token, `spare-${Math.random()}`);
        s.ws.close();
        return s.frames[0]?.kind?.$case === "error" && s.frames[0].kind.value.code === ErrorCode.ERROR_CODE_SESSION_ENDED;
      }, { timeoutMs: SESSION_CACHE_MS + 2_000 });
    }
    expect(await codeOf(refreshTokens(c.httpUrl, spare.refreshToken))).toBe("ERROR_CODE_SESSION_ENDED");
    expect(await codeOf(authenticate(c.httpUrl, "login", alice.username, PASSWORD))).toBe("ERROR_CODE_UNAUTHENTICATED");
    // The username stays taken, for ever: nobody can become "alice" to her contacts.
    expect(await codeOf(authenticate(c.httpUrl, "signup", alice.username, PASSWORD))).toBe("ERROR_CODE_ALREADY_EXISTS");

    // Bob: the message is kept, its sender shown as a deleted account; the direct conversation takes no more messages.
    const conv = (await b.client.listConversations()).find((x) => x.id === direct)!;
    expect(conv.members.find((m) => m.userId === alice.userId)).toMatchObject({ username: "", accountDeleted: true });
    expect((await b.client.history(direct)).messages.map((m) => [m.senderId, m.text])).toEqual([[alice.userId, "kept after deletion"]]);
    expect(await codeOf(b.client.send(direct, "hello?"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(b.client.openDirect(alice.username))).toBe("ERROR_CODE_NOT_FOUND");
    // Presence is gone: offline with no last seen.
    expect(await b.client.presenceQuery([alice.userId])).toEqual([{ userId: alice.userId, status: PresenceStatus.PRESENCE_STATUS_OFFLINE, lastActiveAtMs: 0 }]);
    await Promise.all([phone.close(), b.close()]);
  });

  it("with erasure, every message of the account is deleted for everyone: tombstones for the others, and the text in no store", async () => {
    const [carol, dave] = [await newUser(c, "carol"), await newUser(c, "dave")];
    const k = await device(c, carol, undefined, { url: EDGE1() });
    const d = await device(c, dave, undefined, { url: EDGE2() });
    const secret = `erase-me-${Math.random().toString(36).slice(2)}`;
    const direct = (await k.client.openDirect(dave.username)).id;
    const group = (await d.client.createGroup("erase", [carol.username])).id;
    await k.client.send(direct, `${secret} one`);
    await d.client.send(direct, "dave's own");
    await k.client.send(group, `${secret} two`);
    const edited = await k.client.send(group, "will be edited");
    await k.client.edit(group, edited.seq, `${secret} three`);
    const deletedFor: string[] = [];
    d.client.on("deleted", (e) => { if (e.forEveryone) deletedFor.push(`${e.conversationId}#${e.seq}`); });
    // Dave reads the newest pages first, so the production profile's history cache holds them.
    await d.client.history(direct);
    await d.client.history(group);
    expect((await storesHolding(secret)).length).toBeGreaterThan(0);

    await k.client.deleteAccount(PASSWORD, { erase: true });
    await waitFor("dave's device gets the three deletions", () => deletedFor.length === 3, { seen: () => deletedFor.join(",") });
    expect(deletedFor.sort()).toEqual([`${direct}#1`, `${group}#1`, `${group}#2`].sort());
    const page = (await d.client.history(direct)).messages.map((m) => [m.seq, m.text, m.deleted]);
    expect(page).toEqual([[2, "dave's own", false], [1, "", true]]);
    expect((await d.client.history(group)).messages.every((m) => m.text === "" && m.deleted)).toBe(true);
    expect(await storesHolding(secret)).toEqual([]);
    await Promise.all([k.close(), d.close()]);
  });
});
