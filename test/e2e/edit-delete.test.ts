import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ChatClient, ErrorCode, type ClientError, HistoryDirection } from "../../internal/client/client.js";
import { Device, device, newUser, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

const DELETE_WINDOW_S = 2;

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ EDIT_WINDOW_S: "3600", MAX_EDITS_PER_MESSAGE: "3", DELETE_WINDOW_S: String(DELETE_WINDOW_S), SEND_RATE: "1000", SEND_BURST: "1000", FRAME_RATE: "2000", FRAME_BURST: "4000" }); });
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

/** What a device shows, built only from the events it applies (messages, edits, deletions). */
class View {
  readonly shown = new Map<string, { text: string; edited: boolean; deleted: boolean }>();
  readonly hidden = new Set<string>();
  constructor(client: ChatClient) {
    client.on("message", (m) => this.shown.set(`${m.conversationId}#${m.seq}`, { text: m.text, edited: m.editedAtMs > 0, deleted: m.deleted }));
    client.on("edited", (e) => {
      const k = `${e.conversationId}#${e.seq}`;
      const m = this.shown.get(k);
      if (m && !m.deleted) this.shown.set(k, { ...m, text: e.text, edited: true });
    });
    client.on("deleted", (d) => {
      const k = `${d.conversationId}#${d.seq}`;
      if (!d.forEveryone) { this.hidden.add(k); return; }
      this.shown.set(k, { text: "", edited: this.shown.get(k)?.edited ?? false, deleted: true });
    });
  }
  /** What is on screen: hidden messages left out, in key order. */
  state(): string {
    return JSON.stringify([...this.shown].filter(([k]) => !this.hidden.has(k)).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  }
}

/** A small deterministic generator, so a failing mix can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

/**
 * P7: bob's second device is offline through a seeded mix of `ops` sends, edits and deletions
 * (for him and for everyone) in a direct conversation and a group, then resyncs from its cursor;
 * it must end with exactly the state of bob's device that stayed online, and both with what the
 * history pages say. With `killChatAt`, the chat process is killed (SIGKILL) at that operation
 * and started again while the mix goes on (requests retry; a retried delete may find its work done).
 */
async function offlineThroughMix(ops: number, killChatAt = -1): Promise<void> {
  const [alice, bob, carol] = await Promise.all([newUser(c, "alice"), newUser(c, "bob"), newUser(c, "carol")]);
  const a = await device(c, alice);
  const b = await device(c, bob);
  const carolDevice = await device(c, carol, undefined, { mode: "json" });
  const direct = (await a.client.openDirect(bob.username)).id;
  const group = (await a.client.createGroup("mix", [bob.username, carol.username])).id;
  const online = new View(b.client);
  // Bob's second device: connected for the start, offline through the mix, then back from its cursor.
  const later = await device(c, bob, undefined, { mode: "json" });
  const offline = new View(later.client);
  await later.close();
  const cursor = later.client.cursor;

  const rand = random(7);
  const sent: Array<{ conv: string; seq: number; by: "a" | "b"; deleted: boolean }> = [];
  const senders = { a: a.client, b: b.client };
  let restarted: Promise<void> = Promise.resolve();
  for (let i = 0; i < ops; i++) {
    if (i === killChatAt) {
      await c.cluster.stop("chat", "SIGKILL");
      restarted = c.cluster.start({ name: "chat", service: "chat", env: c.env }).then(() => {});
    }
    const r = rand();
    const conv = rand() < 0.5 ? direct : group;
    const mine = (by: "a" | "b") => sent.filter((m) => m.conv === conv && m.by === by && !m.deleted);
    if (r < 0.45 || sent.length < 5) {
      const by = rand() < 0.5 ? "a" : "b";
      const s = await senders[by].send(conv, `${by} says ${i}`);
      sent.push({ conv, seq: s.seq, by, deleted: false });
    } else if (r < 0.7) {
      const by = rand() < 0.5 ? "a" : "b";
      const m = mine(by)[Math.floor(rand() * mine(by).length)];
      if (!m) continue;
      await senders[by].edit(conv, m.seq, `${by} edits ${i}`).catch((e: ClientError) => { if (e.code !== ErrorCode.ERROR_CODE_WINDOW_CLOSED) throw e; });
    } else if (r < 0.85) {
      const m = sent.filter((x) => x.conv === conv)[Math.floor(rand() * sent.filter((x) => x.conv === conv).length)];
      if (m) await b.client.deleteMessage(conv, m.seq, false);
    } else {
      // Alice created the group: she may delete any of its messages for everyone, at any time.
      const m = sent.filter((x) => x.conv === group && !x.deleted)[Math.floor(rand() * sent.filter((x) => x.conv === group && !x.deleted).length)];
      if (!m) continue;
      // A retry after chat died may find the delete done (MESSAGE_DELETED): the same outcome.
      await a.client.deleteMessage(group, m.seq, true).catch((e: ClientError) => { if (e.code !== ErrorCode.ERROR_CODE_MESSAGE_DELETED) throw e; });
      m.deleted = true;
    }
  }
  await restarted;
  // Bob's online device has everything once a last marker message arrives after the mix.
  const marker = await a.client.send(direct, "end of the mix");
  await waitFor("the online device has the whole mix", () => online.shown.has(`${direct}#${marker.seq}`));

  const back = new Device(c, bob, later.deviceId, { mode: "json", cursor });
  const resynced = new View(back.client);
  // The reconnected device continues the view it had, then applies its catch-up.
  for (const [k, v] of offline.shown) resynced.shown.set(k, v);
  for (const k of offline.hidden) resynced.hidden.add(k);
  await back.connect();
  await waitFor("the resynced device has the marker", () => resynced.shown.has(`${direct}#${marker.seq}`));
  expect(resynced.state()).toBe(online.state());
  expect(online.hidden.size).toBeGreaterThan(0);
  expect([...online.shown.values()].some((m) => m.deleted)).toBe(true);
  expect([...online.shown.values()].some((m) => m.edited)).toBe(true);

  // History agrees with the devices: latest texts, tombstones, and no hidden message in bob's pages.
  for (const conv of [direct, group]) {
    const page = await b.client.history(conv, { direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, limit: 200 });
    const fromHistory = new Map(page.messages.map((m) => [`${conv}#${m.seq}`, { text: m.text, edited: m.editedAtMs > 0, deleted: m.deleted }]));
    const fromDevice = new Map([...online.shown].filter(([k]) => k.startsWith(`${conv}#`) && !online.hidden.has(k)));
    expect(JSON.stringify([...fromHistory].sort())).toBe(JSON.stringify([...fromDevice].sort()));
  }
  // Carol never hid anything: her history has every seq of the group, deleted ones as tombstones.
  const carolPage = await carolDevice.client.history(group, { direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, limit: 200 });
  expect(carolPage.messages.map((m) => m.seq)).toEqual(carolPage.messages.map((_, i) => i + 1));
  expect(carolPage.messages.filter((m) => m.deleted).every((m) => m.text === "")).toBe(true);
  await Promise.all([a.close(), b.close(), back.close(), carolDevice.close()]);
  }

describe("edit and delete (R11, P7)", () => {
  it("a device offline through 200 sends, edits and deletions ends, after resync, with the state of a device that stayed online", () => offlineThroughMix(200));

  it("the same with the chat process killed in the middle of the mix", () => offlineThroughMix(120, 60));

  it("refuses with typed errors on both subprotocols and changes nothing: someone else's message, an unknown seq, a deleted one, too late, too many edits, too long", async () => {
  const [alice, bob] = await Promise.all([newUser(c, "alice"), newUser(c, "bob")]);
  for (const mode of ["proto", "json"] as const) {
    const a = await device(c, alice, undefined, { mode });
    const b = await device(c, bob, undefined, { mode });
    const conv = (await a.client.openDirect(bob.username)).id;
    const base = (await a.client.history(conv)).messages[0]?.seq ?? 0;
    const s1 = await a.client.send(conv, "alice's");
    const s2 = await b.client.send(conv, "bob's");
    const code = (p: Promise<unknown>) => p.then(() => "ok", (e: ClientError) => ErrorCode[e.code]);
    expect(await code(a.client.edit(conv, s2.seq, "not mine"))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await code(a.client.deleteMessage(conv, s2.seq, true))).toBe("ERROR_CODE_PERMISSION_DENIED");
    expect(await code(a.client.edit(conv, base + 99, "nothing there"))).toBe("ERROR_CODE_NOT_FOUND");
    expect(await code(a.client.edit(conv, 0, "no seq"))).toBe("ERROR_CODE_INVALID_ARGUMENT");
    expect(await code(a.client.edit(conv, s1.seq, "x".repeat(100_001)))).toBe("ERROR_CODE_MESSAGE_TOO_LONG");
    for (const n of [1, 2, 3]) await a.client.edit(conv, s1.seq, `edit ${n}`);
    expect(await code(a.client.edit(conv, s1.seq, "edit 4"))).toBe("ERROR_CODE_WINDOW_CLOSED");
    await b.client.deleteMessage(conv, s2.seq, true);
    expect(await code(b.client.edit(conv, s2.seq, "undelete"))).toBe("ERROR_CODE_MESSAGE_DELETED");
    expect(await code(b.client.deleteMessage(conv, s2.seq, true))).toBe("ERROR_CODE_MESSAGE_DELETED");
    // A non-member learns nothing.
    const mallory = await device(c, await newUser(c, "mallory"), undefined, { mode });
    expect(await code(mallory.client.deleteMessage(conv, s1.seq, false))).toBe("ERROR_CODE_PERMISSION_DENIED");
    // Past DELETE_WINDOW_S the sender can no longer delete for everyone (for me still works).
    await waitFor("the delete window passes", () => Date.now() - s1.sentAtMs > DELETE_WINDOW_S * 1000 + 200);
    expect(await code(a.client.deleteMessage(conv, s1.seq, true))).toBe("ERROR_CODE_WINDOW_CLOSED");
    await a.client.deleteMessage(conv, s1.seq, false);
    const page = await b.client.history(conv, { direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: base });
    expect(page.messages.map((m) => [m.text, m.editedAtMs > 0, m.deleted])).toEqual([["edit 3", true, false], ["", false, true]]);
    // Bob's send read everything before it: nothing unread.
    expect((await b.client.listConversations()).find((x) => x.id === conv)?.unread).toBe(0);
    await Promise.all([a.close(), b.close(), mallory.close()]);
  }
  });

  it("replies name an earlier message of the conversation, reach other devices with it, and quote the tombstone once it is deleted", async () => {
  const [alice, bob] = await Promise.all([newUser(c, "alice"), newUser(c, "bob")]);
  const a = await device(c, alice);
  const b = await device(c, bob, undefined, { mode: "json" });
  const conv = (await a.client.openDirect(bob.username)).id;
  const other = (await a.client.createGroup("elsewhere", [bob.username])).id;
  const q = await a.client.send(conv, "lunch at noon?");
  const r = await b.client.reply(conv, q.seq, "yes!");
  await waitFor("alice gets the reply", () => a.in(conv).some((m) => m.seq === r.seq));
  expect(a.in(conv).find((m) => m.seq === r.seq)?.replyToSeq).toBe(q.seq);
  // Only an earlier message of the same conversation: a seq past its head is refused, nothing stored.
  const code = (p: Promise<unknown>) => p.then(() => "ok", (e: ClientError) => ErrorCode[e.code]);
  expect(await code(b.client.reply(conv, r.seq + 5, "to the future"))).toBe("ERROR_CODE_NOT_FOUND");
  expect(await code(b.client.reply(other, q.seq, "wrong conversation"))).toBe("ERROR_CODE_NOT_FOUND");
  expect((await a.client.history(conv)).messages.map((m) => m.seq)).toEqual([r.seq, q.seq]);
  // The quoted message is deleted for everyone: the reply keeps its reference, the quote shows the tombstone.
  await a.client.deleteMessage(conv, q.seq, true);
  const page = await b.client.history(conv, { direction: HistoryDirection.HISTORY_DIRECTION_FORWARD });
  const reply = page.messages.find((m) => m.seq === r.seq)!;
  const quoted = page.messages.find((m) => m.seq === reply.replyToSeq)!;
  expect([reply.text, reply.replyToSeq, quoted.text, quoted.deleted]).toEqual(["yes!", q.seq, "", true]);
  await Promise.all([a.close(), b.close()]);
  });

  it("an unread message deleted for everyone no longer counts as unread", async () => {
  const [alice, bob, carol] = await Promise.all([newUser(c, "alice"), newUser(c, "bob"), newUser(c, "carol")]);
  const a = await device(c, alice);
  const group = (await a.client.createGroup("unread", [bob.username, carol.username])).id;
  const s1 = await a.client.send(group, "one");
  await a.client.send(group, "two");
  const b = await device(c, bob);
  const unread = async () => (await b.client.listConversations()).find((x) => x.id === group)?.unread;
  expect(await unread()).toBe(2);
  await a.client.deleteMessage(group, s1.seq, true);
  expect(await unread()).toBe(1);
  await Promise.all([a.close(), b.close()]);
  });
});
