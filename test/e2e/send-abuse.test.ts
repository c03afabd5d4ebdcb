import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import type { Sent } from "../../internal/client/client.js";
import { device, newUser, rawSession, startCluster, waitFor, warnOnFailure, type TestCluster, type TestUser } from "./harness.js";

/**
 * One user's burst of large messages must not slow or fail another user's sends
 * (docs/security.md, "Sends": 200 legal messages of 100,000 emoji each, from 5
 * sessions into 50 one-member groups, held a victim's sends up for seconds). Real processes,
 * embedded profile, default burst. The byte refill is slowed to 1,000 bytes a
 * second so that the outcome does not depend on how fast this machine is: the
 * attacker's user gets exactly the burst (one 400 KB message, the largest legal one,
 * whichever of its sessions it comes from), everything past it is refused.
 */
const BURST = 400_000;
const LARGE = String.fromCodePoint(0x1f600).repeat(100_000); // 400,000 bytes, the largest legal message
const SESSIONS = 3;
const GROUPS = 15;
const PER_SESSION = 15;
const VICTIM_SENDS = 30;

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ SEND_BYTES_PER_S: "1000" }); });
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

/** A session on a bare socket: the attacker fires frames without waiting for replies, and sees every reply. */
async function attackerSession(user: TestUser, deviceId: string) {
  const session = await rawSession(c.wsUrl, user.token, deviceId);
  await waitFor(`${deviceId} synced`, () => session.frames.some((f) => f.kind?.$case === "synced"));
  return session;
}

describe("a burst of large messages from one user (docs/security.md, Sends)", () => {
  it("is cut at the user's byte burst with RATE_LIMITED across all its sessions, while another user's sends beside it are all acknowledged and delivered in order", async () => {
    const mallory = await newUser(c, "mallory");
    const m = await device(c, mallory);
    const groups: string[] = [];
    for (let i = 0; i < GROUPS; i++) groups.push((await m.client.createGroup(`g${i}`, [])).id);
    const sessions = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => attackerSession(mallory, `attack-${i}`)));

    const { a, b, conversationId } = await (async () => {
      const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
      const [da, db] = [await device(c, alice), await device(c, bob)];
      return { a: da, b: db, conversationId: (await da.client.openDirect(bob.username)).id };
    })();

    // The victim sends one small message after another for the whole test.
    const acked: Sent[] = [];
    const victim = (async () => {
      for (let i = 0; i < VICTIM_SENDS; i++) acked.push(await a.client.send(conversationId, `small ${i}`));
    })();
    await waitFor("the victim's first sends", () => acked.length >= 3);

    // The burst: every session fires its large sends at once, spread over the groups.
    const refs: Array<{ s: number; ref: number; group: string }> = [];
    sessions.forEach((s, k) => {
      for (let i = 0; i < PER_SESSION; i++) {
        const ref = 100 + i;
        const group = groups[(k * PER_SESSION + i) % GROUPS]!;
        refs.push({ s: k, ref, group });
        s.send({ ref, kind: { $case: "send", value: { conversationId: group, clientMsgId: `big-${k}-${i}`, text: LARGE, firstSend: false } } });
      }
    });
    const answers = () => refs.map((r) => sessions[r.s]!.reply(r.ref));
    await waitFor("an answer to every large send", () => answers().every((f) => f !== undefined), { seen: () => `${answers().filter(Boolean).length} of ${refs.length}` });
    await victim;

    // The attacker: exactly what the burst holds went through, from whichever sessions; the rest is RATE_LIMITED with a wait.
    const kinds = answers().map((f) => f!.kind!);
    const sent = kinds.filter((k) => k.$case === "sent");
    const refused = kinds.flatMap((k) => (k.$case === "error" ? [k.value] : []));
    expect(sent.length).toBe(Math.floor(BURST / Buffer.byteLength(LARGE)));
    expect(refused.length).toBe(refs.length - sent.length);
    expect(refused.every((e) => e.code === ErrorCode.ERROR_CODE_RATE_LIMITED && e.retryable && e.retryAfterMs > 0)).toBe(true);
    // Nothing refused was stored: the groups hold exactly the accepted sends.
    let stored = 0;
    for (const g of groups) stored += (await m.client.history(g)).messages.length;
    expect(stored).toBe(sent.length);
    // A limit, not a ban: the sessions are open and a small send still goes through.
    expect(sessions.map((s) => s.closed())).toEqual(sessions.map(() => undefined));
    sessions[0]!.send({ ref: 999, kind: { $case: "send", value: { conversationId: groups[0]!, clientMsgId: "small-after", text: "hi", firstSend: false } } });
    await waitFor("the small send after the burst", () => sessions[0]!.reply(999) !== undefined);
    expect(sessions[0]!.reply(999)!.kind?.$case).toBe("sent");

    // The victim: every send acknowledged once, in order, and delivered to bob in that order.
    expect(acked.map((s) => s.seq)).toEqual(Array.from({ length: VICTIM_SENDS }, (_, i) => i + 1));
    await waitFor("bob has every message", () => b.in(conversationId).length === VICTIM_SENDS, { seen: () => `${b.in(conversationId).length}` });
    expect(b.in(conversationId).map((x) => x.text)).toEqual(Array.from({ length: VICTIM_SENDS }, (_, i) => `small ${i}`));

    for (const s of sessions) s.ws.close();
    await Promise.all([m.close(), a.close(), b.close()]);
  });
});
