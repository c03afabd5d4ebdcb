import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, type ClientError } from "../../internal/client/client.js";
import { device, newUser, startCluster, waitFor, type TestCluster, type TestUser } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ SEND_RATE: "1000", SEND_BURST: "1000", FRAME_RATE: "2000", FRAME_BURST: "4000" }); });
afterAll(async () => { await c?.stop(); });

describe("group chat (R2)", () => {
  it("takes 100 members, refuses the 101st with GROUP_FULL, and delivers to every online member", async () => {
    const owner = await newUser(c, "owner");
    const others: TestUser[] = [];
    for (let i = 0; i < 99; i++) others.push(await newUser(c, "member"));
    const o = await device(c, owner);
    // Created with 50, then the rest added one by one.
    const group = await o.client.createGroup("hundred", others.slice(0, 49).map((u) => u.username));
    expect(group.members).toHaveLength(50);
    for (const u of others.slice(49)) await o.client.addMember(group.id, u.username);
    const extra = await newUser(c, "extra");
    const err = (await o.client.addMember(group.id, extra.username).catch((e) => e)) as ClientError;
    expect(err.code).toBe(ErrorCode.ERROR_CODE_GROUP_FULL);
    const [listed] = (await o.client.listConversations()).filter((x) => x.id === group.id);
    expect(listed!.members).toHaveLength(100);

    // Ten members online: each gets the owner's messages in the same order.
    const online = await Promise.all(others.slice(0, 10).map((u) => device(c, u)));
    for (let i = 1; i <= 5; i++) await o.client.send(group.id, `group message ${i}`);
    for (const d of online) await waitFor("group delivery", () => d.in(group.id).length === 5);
    for (const d of online) expect(d.in(group.id).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    // An offline member reads it all from history after joining late.
    const late = await device(c, others[98]!);
    const page = await late.client.history(group.id);
    expect(page.messages.map((m) => m.text)).toEqual([5, 4, 3, 2, 1].map((i) => `group message ${i}`));
    // The extra user is not a member and cannot read or write.
    const x = await device(c, extra);
    expect(((await x.client.history(group.id).catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    expect(((await x.client.send(group.id, "let me in").catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    for (const d of [o, late, x, ...online]) d.close();
  });

  it("sends a member's receipts to the senders of what they passed, not to every member (R8 without members² frames)", async () => {
    const [ann, bob, cat] = [await newUser(c, "ann"), await newUser(c, "bob"), await newUser(c, "cat")];
    const [a, b, k] = [await device(c, ann), await device(c, bob), await device(c, cat)];
    const g = await a.client.createGroup("receipts", [bob.username, cat.username]);
    const seenBy = { ann: [] as number[], cat: [] as number[] };
    let annSawDelivered = 0;
    a.client.on("receipt", (r) => { if (r.userId === bob.userId) { seenBy.ann.push(r.readSeq); annSawDelivered = r.deliveredSeq; } });
    k.client.on("receipt", (r) => { if (r.userId === bob.userId) seenBy.cat.push(r.readSeq); });
    const s1 = await a.client.send(g.id, "one");
    await waitFor("bob has it", () => b.in(g.id).length === 1);
    // Bob's device acknowledged delivery by itself: his first receipt here, which goes to everyone
    // (chat has told nobody anything about him yet). Reading is the next one.
    await waitFor("ann sees it delivered to bob", () => annSawDelivered >= s1.seq);
    await b.client.markRead(g.id, s1.seq);
    await waitFor("ann, the sender, sees bob read it", () => seenBy.ann.includes(s1.seq));
    // Whatever the edge was sent with ann's receipt reached cat's socket before a later message.
    await a.client.send(g.id, "two");
    await waitFor("cat has both", () => k.in(g.id).length === 2);
    expect(seenBy.cat.filter((seq) => seq >= s1.seq)).toEqual([]);
    for (const d of [a, b, k]) d.close();
  });

  it("lets a member leave and a creator remove; removed members stop receiving", async () => {
    const [owner, m1, m2] = [await newUser(c, "owner"), await newUser(c, "m"), await newUser(c, "m")];
    const o = await device(c, owner);
    const d1 = await device(c, m1);
    const group = await o.client.createGroup("small", [m1.username, m2.username]);
    await waitFor("m1 sees the group", () => d1.client.cursor >= 1);
    const d2 = await device(c, m2);
    // A plain member cannot remove another one.
    expect(((await d2.client.removeMember(group.id, m1.username).catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    await d2.client.leave(group.id);
    await o.client.removeMember(group.id, m1.username);
    await o.client.send(group.id, "only me now");
    expect(((await d1.client.send(group.id, "still here?").catch((e) => e)) as ClientError).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    const page = await o.client.history(group.id);
    expect(page.messages.map((m) => m.text)).toEqual(["only me now"]);
    expect(d1.in(group.id)).toHaveLength(0);
    for (const d of [o, d1, d2]) d.close();
  });
});

describe("multi-device sync (R5, P5)", () => {
  it("resyncs a device that was offline for 200 messages to exactly the other device's list", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const phone = await device(c, alice, "phone");
    const laptop = await device(c, alice, "laptop");
    const b = await device(c, bob);
    const conv = await b.client.openDirect(alice.username);
    await b.client.send(conv.id, "before");
    await waitFor("laptop has the first", () => laptop.in(conv.id).length === 1);
    const laptopCursor = laptop.client.cursor;
    laptop.close();
    // 200 messages from both sides while the laptop is away; alice's phone sends half.
    for (let i = 0; i < 100; i++) {
      await b.client.send(conv.id, `bob ${i}`);
      await phone.client.send(conv.id, `alice ${i}`);
    }
    await waitFor("phone has all", () => phone.in(conv.id).length === 201);
    const back = await device(c, alice, "laptop", { cursor: laptopCursor });
    await waitFor("laptop caught up", () => back.in(conv.id).length === 200);
    const all = [...laptop.in(conv.id), ...back.in(conv.id)];
    expect(all.map((m) => m.seq)).toEqual(phone.in(conv.id).map((m) => m.seq));
    expect(all.map((m) => m.text)).toEqual(phone.in(conv.id).map((m) => m.text));
    expect(new Set(all.map((m) => m.seq)).size).toBe(201);
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 201 }, (_, i) => i + 1));
    for (const d of [phone, back, b]) d.close();
  });

  it("shows the sender's own sends on its other devices, and read state follows", async () => {
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const phone = await device(c, alice, "phone");
    const laptop = await device(c, alice, "laptop");
    const conv = await phone.client.openDirect(bob.username);
    const sent = await phone.client.send(conv.id, "from my phone");
    await waitFor("laptop sees phone's send", () => laptop.in(conv.id).length === 1);
    expect(laptop.in(conv.id)[0]).toMatchObject({ seq: sent.seq, text: "from my phone", senderDeviceId: "phone" });
    // The phone also sees its own message once (as a sync-log event), not twice.
    await waitFor("phone event", () => phone.in(conv.id).length === 1);
    const b = await device(c, bob);
    await b.client.send(conv.id, "reply");
    await waitFor("laptop gets reply", () => laptop.in(conv.id).length === 2);
    const reads: number[] = [];
    laptop.client.on("read", (r) => reads.push(r.readSeq));
    await phone.client.markRead(conv.id, 2);
    await waitFor("laptop learns the read pointer", () => reads.includes(2));
    for (const d of [phone, laptop, b]) d.close();
  });

  it("refuses a second live session of the same device unless it takes over", async () => {
    const alice = await newUser(c, "alice");
    const first = await device(c, alice, "tablet");
    const err = (await device(c, alice, "tablet", { reconnect: false }).catch((e) => e)) as ClientError;
    expect(err.code).toBe(ErrorCode.ERROR_CODE_DEVICE_IN_USE);
    // The first session is untouched.
    expect((await first.client.listConversations())).toEqual([]);
    first.close();
  });
});
