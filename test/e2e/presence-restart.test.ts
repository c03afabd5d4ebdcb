import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { directPair, startCluster, steadySender, waitFor, warnOnFailure, type TestCluster } from "./harness.js";

let c: TestCluster;
// The head check is the safety net that would eventually deliver anyway: pushed out of reach,
// so only presence recovering its routes can pass. Edges heartbeat presence every second.
beforeAll(async () => { c = await startCluster({ HEAD_CHECK_INTERVAL_MS: "3600000", HEARTBEAT_INTERVAL_MS: "2000", SEND_RATE: "1000", SEND_BURST: "1000" }); });
afterAll(async () => { await c?.stop(); });

describe("presence restart (embedded, R4)", () => {
  it("resumes live delivery and online status for devices that stayed connected when presence is killed under load", async () => {
    warnOnFailure(() => c);
    const { a, b, conversationId } = await directPair(c);
    const sender = steadySender(a, conversationId);
    await waitFor("live traffic before the crash", () => b.in(conversationId).length >= 10, 30_000);

    await c.cluster.stop("presence", "SIGKILL");
    await c.cluster.start({ name: "presence", service: "presence", env: c.env });
    const restartedAt = Date.now();
    const ackedAtRestart = sender.acked.length;

    // Live delivery comes back for the device that never reconnected: messages acknowledged
    // after the restart reach bob well before any head check could have run.
    await waitFor("live delivery after the presence restart", () => {
      const after = sender.acked.slice(ackedAtRestart, ackedAtRestart + 10);
      const got = new Set(b.in(conversationId).map((m) => m.seq));
      return after.length === 10 && after.every((s) => got.has(s.seq));
    }, 30_000);
    expect(Date.now() - restartedAt).toBeLessThan(30_000);

    // Alice, who stayed connected, shows online again.
    let status: PresenceStatus | undefined;
    await waitFor("alice online again", async () => (status = (await b.client.presenceQuery([a.user.userId]))[0]?.status) === PresenceStatus.PRESENCE_STATUS_ONLINE, { everyMs: 100, seen: () => String(status) });
    expect(status).toBe(PresenceStatus.PRESENCE_STATUS_ONLINE);

    await sender.stop();
    // Nothing was lost or duplicated on the way: bob ends with every acknowledged message once.
    const seqs = sender.acked.map((s) => s.seq);
    await waitFor("bob has everything", () => b.in(conversationId).length >= seqs.length, 30_000);
    expect(b.in(conversationId).map((m) => m.seq)).toEqual(Array.from({ length: b.in(conversationId).length }, (_, k) => k + 1));
    a.close();
    b.close();
  });
});
