import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, type ClientError, type TypingUpdate } from "../../internal/client/client.js";
import { TypingIndicators } from "../../internal/client/typing.js";
import { device, newUser, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

const THROTTLE_MS = 800;
const EXPIRY_MS = 2_000;

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ TYPING_THROTTLE_MS: String(THROTTLE_MS), TYPING_EXPIRY_MS: String(EXPIRY_MS) }); });
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

describe("typing indicators (R11)", () => {
  it("reach the other members' online devices on both subprotocols, throttled per session and conversation, never the typist's own devices", async () => {
    const [alice, bob, carol] = await Promise.all([newUser(c, "alice"), newUser(c, "bob"), newUser(c, "carol")]);
    const a = await device(c, alice);
    const a2 = await device(c, alice, undefined, { mode: "json" });
    const b = await device(c, bob);
    const bJson = await device(c, bob, undefined, { mode: "json" });
    const group = await a.client.createGroup("typists", [bob.username, carol.username]);
    const seen = (d: typeof a) => { const list: TypingUpdate[] = []; d.client.on("typing", (t) => list.push(t)); return list; };
    const [atB, atBJson, atA2] = [seen(b), seen(bJson), seen(a2)];

    // A flood straight at the edge (the client library would have kept quiet): one goes out, the rest are refused.
    const replies = await Promise.all(Array.from({ length: 30 }, () => a.client.request({ $case: "typing", value: { conversationId: group.id } }).then(() => "ok", (e: ClientError) => ErrorCode[e.code])));
    expect(replies.filter((r) => r === "ok")).toHaveLength(1);
    expect(replies.filter((r) => r === "ERROR_CODE_RATE_LIMITED")).toHaveLength(29);
    await waitFor("bob's devices see alice typing", () => atB.length === 1 && atBJson.length === 1);
    expect(atB[0]).toEqual({ conversationId: group.id, userId: alice.userId, username: alice.username, expiresInMs: EXPIRY_MS });
    expect(atBJson[0]).toEqual(atB[0]);

    // After the throttle window the next one goes out; the JSON session has its own window.
    await waitFor("the throttle window passes", async () => (await a.client.request({ $case: "typing", value: { conversationId: group.id } }).then(() => true, () => false)));
    await a2.client.request({ $case: "typing", value: { conversationId: group.id } });
    await waitFor("both later indicators arrive", () => atB.length === 3 && atBJson.length === 3);
    // Carol has no online device, and alice's own devices are never told she is typing.
    const ping = await bJson.client.request({ $case: "typing", value: { conversationId: group.id } });
    expect(ping.kind?.$case).toBe("ok");
    await waitFor("alice's second device sees bob typing", () => atA2.length === 1);
    expect(atA2.map((t) => t.userId)).toEqual([bob.userId]);
    expect(atB.every((t) => t.userId === alice.userId)).toBe(true);
    await Promise.all([a.close(), a2.close(), b.close(), bJson.close()]);
  });

  it("expire by themselves and end with the typist's message", async () => {
    const [alice, bob] = await Promise.all([newUser(c, "alice"), newUser(c, "bob")]);
    const a = await device(c, alice);
    const b = await device(c, bob);
    const conv = await a.client.openDirect(bob.username);
    const shown: string[] = [];
    const indicators = new TypingIndicators(b.client, (id) => shown.push(indicators.label(id)));

    await a.client.typing(conv.id);
    await waitFor("bob sees alice typing", () => indicators.label(conv.id) === `${alice.username} is typing…`);
    // Nothing more from alice: it goes away by itself after the expiry she was sent with.
    const startedAt = Date.now();
    await waitFor("the indicator expires", () => indicators.label(conv.id) === "");
    expect(Date.now() - startedAt).toBeGreaterThan(EXPIRY_MS / 2);

    // Typing again (the client's own interval passed), then the message clears it at once.
    await waitFor("alice may type again", async () => { await a.client.typing(conv.id); return indicators.label(conv.id) !== ""; });
    await a.client.send(conv.id, "done typing");
    await waitFor("bob has the message", () => b.in(conv.id).length === 1);
    expect(indicators.label(conv.id)).toBe("");
    expect(shown).toEqual([`${alice.username} is typing…`, "", `${alice.username} is typing…`, ""]);
    indicators.close();
    await Promise.all([a.close(), b.close()]);
  });

  it("refuses a non-member's typing like a non-member's send, on both subprotocols, and tells the members nothing", async () => {
    const [alice, bob, mallory] = await Promise.all([newUser(c, "alice"), newUser(c, "bob"), newUser(c, "mallory")]);
    const a = await device(c, alice);
    const conv = await a.client.openDirect(bob.username);
    const atA: TypingUpdate[] = [];
    a.client.on("typing", (t) => atA.push(t));
    for (const mode of ["proto", "json"] as const) {
      const m = await device(c, mallory, undefined, { mode });
      const typing = (await m.client.typing(conv.id).catch((e) => e)) as ClientError;
      const send = (await m.client.send(conv.id, "hi").catch((e) => e)) as ClientError;
      expect([typing.code, send.code]).toEqual([ErrorCode.ERROR_CODE_PERMISSION_DENIED, ErrorCode.ERROR_CODE_PERMISSION_DENIED]);
      const bad = (await m.client.request({ $case: "typing", value: { conversationId: "" } }).catch((e) => e)) as ClientError;
      expect(bad.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      await m.close();
    }
    // A member's indicator after the refusals is the first alice sees.
    const b = await device(c, bob);
    await b.client.typing(conv.id);
    await waitFor("alice sees bob typing", () => atA.length === 1);
    expect(atA.map((t) => t.userId)).toEqual([bob.userId]);
    await Promise.all([a.close(), b.close()]);
  });
});
