import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { ErrorCode, type ClientError, type PresenceUpdate } from "../../internal/client/client.js";
import { device, newUser, presenceSettled, startCluster, waitFor, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ PRESENCE_GRACE_MS: "1500", PRESENCE_MAX_SUBSCRIPTIONS: "2" }); });
afterAll(async () => { await c?.stop(); });

const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;
const OFFLINE = PresenceStatus.PRESENCE_STATUS_OFFLINE;

describe("presence (R4)", () => {
  it("pushes online/offline to subscribed contacts, and a flap inside the grace period changes nothing", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const b = await device(c, bob);
    await b.client.openDirect(alice.username);
    const updates: PresenceUpdate[] = [];
    b.client.on("presence", (p) => { if (p.userId === alice.userId) updates.push(p); });
    const [initial] = await b.client.presenceSubscribe([alice.userId]);
    expect(initial!.status).toBe(OFFLINE);

    const phone = await device(c, alice, "phone");
    await waitFor("online pushed", () => updates.some((u) => u.status === ONLINE));
    // Two devices: one leaving keeps the user online.
    const laptop = await device(c, alice, "laptop");
    phone.close();
    // Drop and reconnect of the last device within the grace period: nobody sees a change.
    await laptop.close();
    const again = await device(c, alice, "laptop");
    await presenceSettled(c, b);
    expect(updates.map((u) => u.status)).toEqual([ONLINE]);
    // Gone for longer than the grace period: offline, with last_active_at.
    const before = Date.now();
    again.close();
    await waitFor("offline pushed", () => updates.some((u) => u.status === OFFLINE));
    const off = updates.find((u) => u.status === OFFLINE)!;
    expect(off.lastActiveAtMs).toBeGreaterThan(before - 5_000);
    expect(updates.map((u) => u.status)).toEqual([ONLINE, OFFLINE]);
    b.close();
  });

  it("answers a batched query for contacts and refuses strangers with PERMISSION_DENIED", async () => {
    const [alice, bob, carol, dave] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol"), await newUser(c, "dave")];
    const a = await device(c, alice);
    const g = await a.client.createGroup("friends", [bob.username, carol.username]);
    expect(g.members).toHaveLength(3);
    const bDev = await device(c, bob);
    const res = await a.client.presenceQuery([bob.userId, carol.userId]);
    expect(res.map((r) => [r.userId, r.status])).toEqual([[bob.userId, ONLINE], [carol.userId, OFFLINE]]);
    // Dave shares nothing with alice: the whole request is refused, for known and unknown ids alike.
    const d = await device(c, dave);
    for (const ids of [[alice.userId], [alice.userId, "00000000-0000-0000-0000-000000000000"], ["00000000-0000-0000-0000-000000000000"]]) {
      expect(((await d.client.presenceQuery(ids).catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
      expect(((await d.client.presenceSubscribe(ids).catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    }
    for (const x of [a, bDev, d]) x.close();
  });

  it("pushes to a bounded audience only: past PRESENCE_MAX_SUBSCRIPTIONS a session queries instead", async () => {
    const [alice, bob, carol, dave] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol"), await newUser(c, "dave")];
    const a = await device(c, alice);
    await a.client.createGroup("big", [bob.username, carol.username, dave.username]);
    expect(await a.client.presenceSubscribe([bob.userId, carol.userId])).toHaveLength(2);
    // Re-subscribing to the same users does not count twice.
    expect(await a.client.presenceSubscribe([bob.userId])).toHaveLength(1);
    const err = (await a.client.presenceSubscribe([dave.userId]).catch((e) => e)) as ClientError;
    expect(err.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    const all = await a.client.presenceQuery([bob.userId, carol.userId, dave.userId]);
    expect(all.map((u) => u.userId)).toEqual([bob.userId, carol.userId, dave.userId]);
    a.close();
  });
});
