import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Device, device, newUser, startCluster, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

let c: TestCluster;
// A small send buffer (1 MiB, a few of these messages): the catch-up must stream
// within it (internal/edge/session.spec.ts shows the pacing on a socket that
// drains only as the device reads; here loopback buffers hide most of it).
// The sender's 79 MB are far past the per-user byte limit, which is not what this test is about.
beforeAll(async () => { c = await startCluster({ MAX_BUFFERED_BYTES: String(1024 * 1024), SEND_BYTES_PER_S: String(1 << 30), SEND_BYTES_BURST: String(1 << 30), READ_BYTES_PER_S: String(1 << 30) }); });
afterAll(async () => { await c?.stop(); });

/** 90,000 astral characters: ~360 KB of UTF-8, legal (R3) and far larger than a typical page entry. */
const LARGE = String.fromCodePoint(0x1f600).repeat(90_000);
/** 200 of them are ~72 MB, more than gRPC's 64 MiB message limit: one page of them cannot be one reply. */
const COUNT = 200;
/** Sent while the device catches up. */
const LIVE = 20;

describe("catch-up of a large backlog (P5)", () => {
  it("a device offline while 72 MB of messages arrive reconnects and gets all of them and those sent during its catch-up, in order, once, without being cut off", async () => {
    warnOnFailure(() => c);
    const alice = await newUser(c, "alice");
    const bob = await newUser(c, "bob");
    const a = await device(c, alice);
    const b = await device(c, bob, "phone");
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "before");
    await waitFor("bob has the first message", () => b.in(conv.id).length === 1, { seen: () => `bob has ${b.in(conv.id).length}` });
    const cursor = b.client.cursor;
    b.close();

    const sendStart = Date.now();
    const texts = Array.from({ length: COUNT }, (_, i) => `${i}:${LARGE}`);
    for (const t of texts) await a.client.send(conv.id, t);
    const sendMs = Date.now() - sendStart;

    const catchUpStart = Date.now();
    const back = new Device(c, bob, "phone", { cursor });
    let connects = 0;
    const errors: string[] = [];
    back.client.on("state", (s) => { if (s === "connecting") connects++; });
    back.client.on("error", (e) => errors.push(`${e.codeName}: ${e.message}`));
    await back.connect();
    // More large messages while the backlog streams: held by the edge (within its bounds) or read from the store.
    const live = Array.from({ length: LIVE }, (_, i) => `live ${i}:${LARGE}`);
    const liveSent = (async () => { for (const t of live) await a.client.send(conv.id, t); })();
    const got = () => back.in(conv.id);
    const seen = () => `got ${got().length}/${COUNT + LIVE} messages, cursor ${back.client.cursor}, ${connects} connection(s), errors: ${errors.slice(-3).join(" | ") || "none"}`;
    await waitFor("bob's phone caught up with the backlog", () => got().length >= COUNT, { timeoutMs: 120_000, seen });
    const catchUpMs = Date.now() - catchUpStart;
    // The backlog streamed in one session: never cut off as a slow consumer or by a failed sync.
    const duringCatchUp = { connects, errors: [...errors] };
    await liveSent;
    await waitFor("bob's phone got the messages sent during its catch-up", () => got().length >= COUNT + LIVE, { timeoutMs: 60_000, seen });
    process.stderr.write(`catch-up e2e: sent ${COUNT} x ${LARGE.length / 2} astral chars in ${sendMs} ms; backlog caught up in ${catchUpMs} ms, ${LIVE} live ones by ${Date.now() - catchUpStart} ms\n`);

    const seqs = got().map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: COUNT + LIVE }, (_, i) => i + 2));
    expect(got().map((m) => m.text)).toEqual([...texts, ...live]);
    expect(duringCatchUp).toEqual({ connects: 1, errors: [] });
    a.close();
    back.close();
  }, 300_000);
});

