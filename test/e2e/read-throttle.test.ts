import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { device, newUser, rawSession, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

/**
 * The edge reads each user's WebSockets at READ_BYTES_PER_S at most (burst: one
 * largest frame), so a client firing large frames without waiting, from
 * one session or several, costs the edge no more than that. The bound is asserted from above only (a slow machine
 * reads less, never more), and every frame is still answered in the end.
 */
const RATE = 8_192;
const MAX_FRAME = 4_096;
const FRAMES = 30;
const TEXT = "x".repeat(3_000);

/**
 * Checks the frames answered against what the budget allows by then, at first and each time
 * more have been answered, five times: on the outcome, not at fixed moments (a slow machine
 * answers less, never more).
 */
async function neverAhead(answered: () => number, bound: () => number): Promise<void> {
  for (let k = 0; k < 5; k++) {
    const seen = answered();
    expect(seen).toBeLessThanOrEqual(bound());
    await waitFor("more frames answered", () => answered() > seen, 60_000);
  }
}

let c: TestCluster;
beforeAll(async () => {
  c = await startCluster({ READ_BYTES_PER_S: String(RATE), MAX_FRAME_BYTES: String(MAX_FRAME), MAX_TEXT_LENGTH: "3000", SEND_BYTES_PER_S: String(1 << 30), SEND_BYTES_BURST: String(1 << 30) });
});
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

describe("inbound bytes per WebSocket (READ_BYTES_PER_S)", () => {
  it("reads a client's burst of large frames no faster than the rate, and answers every one in the end", async () => {
    const user = await newUser(c, "firehose");
    const d = await device(c, user);
    const group = (await d.client.createGroup("g", [])).id;
    const s = await rawSession(c.wsUrl, user.token, "fire");
    await waitFor("synced", () => s.frames.some((f) => f.kind?.$case === "synced"));
    const answered = () => s.frames.filter((f) => f.ref >= 100).length;
    const t0 = Date.now();
    for (let i = 0; i < FRAMES; i++) s.send({ ref: 100 + i, kind: { $case: "send", value: { conversationId: group, clientMsgId: `f${i}`, text: TEXT, firstSend: false } } });
    await waitFor("the first answers", () => answered() > 0);
    // Whatever was read by now: the burst (one frame of MAX_FRAME) and the rate since t0, plus one frame in flight.
    const bound = () => Math.floor((MAX_FRAME + (RATE * (Date.now() - t0)) / 1000) / TEXT.length) + 1;
    await neverAhead(answered, bound);
    await waitFor("every frame answered", () => answered() === FRAMES, 60_000);
    expect(s.frames.filter((f) => f.ref >= 100 && f.kind?.$case === "sent")).toHaveLength(FRAMES);
    s.ws.close();
    await d.close();
  });

  it("shares one budget among a user's sessions: two sessions firing at once read no more than one", async () => {
    const user = await newUser(c, "twohoses");
    const d = await device(c, user);
    const group = (await d.client.createGroup("g", [])).id;
    const sessions = [await rawSession(c.wsUrl, user.token, "fire-a"), await rawSession(c.wsUrl, user.token, "fire-b")];
    for (const s of sessions) await waitFor("synced", () => s.frames.some((f) => f.kind?.$case === "synced"));
    const answered = () => sessions.reduce((n, s) => n + s.frames.filter((f) => f.ref >= 100).length, 0);
    const t0 = Date.now();
    for (let i = 0; i < FRAMES; i++) for (const [k, s] of sessions.entries()) s.send({ ref: 100 + i, kind: { $case: "send", value: { conversationId: group, clientMsgId: `f${k}-${i}`, text: TEXT, firstSend: false } } });
    await waitFor("the first answers", () => answered() > 0);
    // One budget's burst and rate since t0, plus one frame in flight per session: with a budget
    // per session, each read its own burst at once and the two together twice this.
    const bound = () => Math.floor((MAX_FRAME + (RATE * (Date.now() - t0)) / 1000) / TEXT.length) + sessions.length;
    await neverAhead(answered, bound);
    await waitFor("every frame answered", () => answered() === 2 * FRAMES, 90_000);
    for (const s of sessions) {
      expect(s.frames.filter((f) => f.ref >= 100 && f.kind?.$case === "sent")).toHaveLength(FRAMES);
      s.ws.close();
    }
    await d.close();
  });
});
