import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { refreshTokens } from "../../internal/client/auth.js";
import { authenticate, ErrorCode, GroupAdds, PresenceVisibility, type ClientError, type PresenceUpdate } from "../../internal/client/client.js";
import { device, newUser, presenceSettled, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

// Privacy settings and per-account quotas against real processes (embedded profile); docs/security.md.
let c: TestCluster;
beforeAll(async () => {
  c = await startCluster({ PRESENCE_GRACE_MS: "500", MAX_DEVICES_PER_USER: "2", MAX_GROUPS_PER_DAY: "2", MAX_SESSIONS_PER_USER: "2" });
});
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;
const OFFLINE = PresenceStatus.PRESENCE_STATUS_OFFLINE;
const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: ClientError) => ErrorCode[e.code]);

describe("privacy settings", () => {
  it("are read and changed through frames on both subprotocols, each field on its own", async () => {
    const ann = await newUser(c, "ann");
    const proto = await device(c, ann);
    const json = await device(c, ann, undefined, { mode: "json" });
    expect(await proto.client.getPrivacy()).toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS, groupAdds: GroupAdds.GROUP_ADDS_EVERYONE });
    expect(await json.client.setPrivacy({ groupAdds: GroupAdds.GROUP_ADDS_CONTACTS }))
      .toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS, groupAdds: GroupAdds.GROUP_ADDS_CONTACTS });
    expect(await proto.client.setPrivacy({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY }))
      .toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_CONTACTS });
    expect(await json.client.getPrivacy()).toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_CONTACTS });
    await Promise.all([proto.close(), json.close()]);
  });

  it("presence shown to nobody: contacts see offline with no last seen, get no pushes (earlier subscriptions included), until it is shown again", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const b = await device(c, bob);
    await b.client.openDirect(alice.username);
    const updates: PresenceUpdate[] = [];
    b.client.on("presence", (p) => { if (p.userId === alice.userId) updates.push(p); });
    // Bob subscribes while alice still shows her presence.
    expect((await b.client.presenceSubscribe([alice.userId]))[0]!.status).toBe(OFFLINE);
    const a = await device(c, alice, "phone");
    await waitFor("alice online pushed", () => updates.some((u) => u.status === ONLINE));
    await a.client.setPrivacy({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY });
    const pushed = updates.length;
    // She leaves (for longer than the grace period) and comes back: bob's old subscription hears nothing of it.
    await a.close();
    await presenceSettled(c, b);
    const again = await device(c, alice, "laptop");
    // Alice still sees her own presence.
    await waitFor("alice online to herself", async () => (await again.client.presenceQuery([alice.userId]))[0]?.status === ONLINE);
    await presenceSettled(c, b);
    expect(updates).toHaveLength(pushed);
    // Asked, or subscribed again: offline, no last seen.
    expect(await b.client.presenceQuery([alice.userId])).toEqual([{ userId: alice.userId, status: OFFLINE, lastActiveAtMs: 0 }]);
    expect(await b.client.presenceSubscribe([alice.userId])).toEqual([{ userId: alice.userId, status: OFFLINE, lastActiveAtMs: 0 }]);
    // Shown again: the truth, to a query and to a new subscription.
    await again.client.setPrivacy({ presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS });
    const [shown] = await b.client.presenceQuery([alice.userId]);
    expect(shown!.status).toBe(ONLINE);
    expect(shown!.lastActiveAtMs).toBeGreaterThan(0);
    expect((await b.client.presenceSubscribe([alice.userId]))[0]!.status).toBe(ONLINE);
    await again.close();
    await waitFor("alice offline pushed again", () => updates.slice(pushed).some((u) => u.status === OFFLINE));
    await b.close();
  });

  it("who may add me to groups: nobody, or only people I share a conversation with; a refusal creates and changes nothing", async () => {
    const [alice, dave, erin, fay] = [await newUser(c, "alice"), await newUser(c, "dave"), await newUser(c, "erin"), await newUser(c, "fay")];
    const [a, d, e] = [await device(c, alice), await device(c, dave), await device(c, erin)];
    await d.client.setPrivacy({ groupAdds: GroupAdds.GROUP_ADDS_NOBODY });
    await e.client.setPrivacy({ groupAdds: GroupAdds.GROUP_ADDS_CONTACTS });
    const before = (await a.client.listConversations()).length;
    expect(await codeOf(a.client.createGroup("with dave", [fay.username, dave.username]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(a.client.createGroup("with erin", [erin.username]))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await a.client.listConversations()).toHaveLength(before);
    const g = await a.client.createGroup("friends", [fay.username]);
    expect(await codeOf(a.client.addMember(g.id, dave.username))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await codeOf(a.client.addMember(g.id, erin.username))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect((await a.client.listConversations()).find((x) => x.id === g.id)!.members.map((m) => m.userId).sort()).toEqual([alice.userId, fay.userId].sort());
    // Once erin and alice share a conversation, alice may add her; dave still refuses everyone.
    await e.client.openDirect(alice.username);
    expect((await a.client.addMember(g.id, erin.username)).members).toHaveLength(3);
    expect(await codeOf(e.client.addMember(g.id, dave.username))).toBe("ERROR_CODE_PERMISSION_DENIED");
    await Promise.all([a.close(), d.close(), e.close()]);
  });
});

describe("quotas", () => {
  it("devices connected at once: a third device is refused with QUOTA_EXCEEDED; a connected one reconnects; a freed place is taken", async () => {
    const ann = await newUser(c, "ann");
    const phone = await device(c, ann, "phone");
    const laptop = await device(c, ann, "laptop");
    expect(await codeOf(device(c, ann, "tablet", { reconnect: false }))).toBe("ERROR_CODE_QUOTA_EXCEEDED");
    await laptop.close();
    // The laptop's disconnect reaches presence just after its socket closes: the place is free once it has.
    let tablet: Awaited<ReturnType<typeof device>> | undefined;
    await waitFor("the laptop's place freed and taken by the tablet", async () => {
      tablet = await device(c, ann, "tablet", { reconnect: false }).catch(() => undefined);
      return tablet !== undefined;
    });
    await Promise.all([phone.close(), tablet!.close()]);
  });

  it("groups a day: the third CreateGroup is refused with QUOTA_EXCEEDED and creates nothing", async () => {
    const ann = await newUser(c, "ann");
    const a = await device(c, ann);
    await a.client.createGroup("one", []);
    await a.client.createGroup("two", []);
    expect(await codeOf(a.client.createGroup("three", []))).toBe("ERROR_CODE_QUOTA_EXCEEDED");
    expect((await a.client.listConversations()).map((x) => x.title)).toEqual(["one", "two"]);
    await a.close();
  });

  it("live sessions: a log-in past the cap ends the least recently used session, whose socket closes and whose refresh token is refused", async () => {
    const ann = await newUser(c, "ann");
    const first = await authenticate(c.httpUrl, "login", ann.username, "correct horse battery", "first");
    const socket = await device(c, { ...ann, token: first.token }, "first");
    const ended: string[] = [];
    socket.client.on("error", (e) => ended.push(ErrorCode[e.code] ?? ""));
    // The sign-up's session is the least recently used: the first log-in keeps both places.
    await authenticate(c.httpUrl, "login", ann.username, "correct horse battery", "second");
    await authenticate(c.httpUrl, "login", ann.username, "correct horse battery", "third");
    // Now the first log-in's session was the oldest of the two left: it ends.
    await waitFor("the first session's socket told", () => ended.includes("ERROR_CODE_SESSION_ENDED"), { seen: () => ended.join(",") });
    expect(await codeOf(refreshTokens(c.httpUrl, first.refreshToken))).toBe("ERROR_CODE_SESSION_ENDED");
    await socket.close();
  });
});
