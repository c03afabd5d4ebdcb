import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { PresenceStatus, type PresenceUpdate } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../../internal/errors/chat-error.js";
import { waitFor as waitForOutcome } from "./wait.js";
import type { Presence, PresenceConfig, PublishFn } from "../../internal/presence/presence.js";
import { sleep as realSleep } from "../../internal/run/sleep.js";

export const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;
export const OFFLINE = PresenceStatus.PRESENCE_STATUS_OFFLINE;

/**
 * Short timeouts so the cases run fast; the waits below are condition loops, not exact sleeps.
 * The device timeout is what a stalled test process must not reach: while a case waits for one
 * device to lapse, its watcher's heartbeats must keep landing, or the watcher lapses too and
 * nothing is published to it. On a loaded machine (CI with Cassandra beside it) a worker can
 * stall for more than a second; at 1 s a stall of 2.5 s failed the exactly-once case, at 3 s the
 * margin is a stall of the whole timeout. On the fake clock (MemoryPresence) it costs nothing.
 */
export const TEST_CONFIG: PresenceConfig = { timeoutMs: 3_000, graceMs: 400 };

export type PresenceFactory = (config: PresenceConfig, publish: PublishFn) => Promise<Presence>;

export interface Published {
  update: PresenceUpdate;
  subscribers: Route[];
}

/** Collects what an implementation publishes. */
export class Recorder {
  readonly all: Published[] = [];
  readonly publish: PublishFn = (update, subscribers) => {
    this.all.push({ update, subscribers });
  };
  of(userId: string): Published[] {
    return this.all.filter((p) => p.update.userId === userId);
  }
  statuses(userId: string): PresenceStatus[] {
    return this.of(userId).map((p) => p.update.status);
  }
}

export function route(userId: string, deviceId = "phone", edge = "edge-1"): Route {
  return { userId, deviceId, sessionId: randomUUID(), edgeId: edge, edgeAddress: `${edge}.local:7101` };
}

/**
 * How the cases let time pass. An implementation whose timers all run in this
 * process (MemoryPresence) runs the cases on a fake clock, so grace periods and
 * sweeps take no wall time; one whose clock is a server's (Redis TTLs) uses real time.
 */
export interface ContractClock {
  install(): void;
  uninstall(): void;
  sleep(ms: number): Promise<void>;
}

export const realClock: ContractClock = {
  install() {},
  uninstall() {},
  sleep: realSleep,
};

/** vitest's fake timers: Date.now and every timer advance only when a case sleeps. */
export const fakeClock: ContractClock = {
  install: () => { vi.useFakeTimers(); },
  uninstall: () => { vi.useRealTimers(); },
  sleep: async (ms) => { await vi.advanceTimersByTimeAsync(ms); },
};

let clock: ContractClock = realClock;

export const sleep = (ms: number) => clock.sleep(ms);

export const waitFor = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000) => waitForOutcome(what, cond, { timeoutMs, everyMs: 25, sleep });

/** What an edge does: heartbeat every route it holds, every 150 ms, as one batch. */
export class Edge {
  readonly routes = new Set<Route>();
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly presence: Presence) {
    this.timer = setInterval(() => {
      if (this.routes.size > 0) this.presence.heartbeat([...this.routes]).catch(() => {});
    }, 150);
  }
  async connect(r: Route, takeover = false): Promise<Route | undefined> {
    const replaced = await this.presence.connect(r, takeover);
    this.routes.add(r);
    return replaced;
  }
  async disconnect(r: Route): Promise<void> {
    this.routes.delete(r);
    await this.presence.disconnect(r);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** A presence from the factory, what it publishes, and an edge heartbeating for it; `cleanups` closes both. */
export async function presenceWithEdge<P extends Presence>(factory: (config: PresenceConfig, publish: PublishFn) => Promise<P>, config: PresenceConfig, cleanups: (() => Promise<void> | void)[]) {
  const rec = new Recorder();
  const presence = await factory(config, rec.publish);
  const edge = new Edge(presence);
  cleanups.push(() => presence.close(), () => edge.stop());
  return { rec, presence, edge };
}

/**
 * The behaviour every Presence implementation shares: the same cases run on
 * MemoryPresence (unit) and RedisPresence (servers).
 */
export function presenceContract(name: string, factory: PresenceFactory, caseClock: ContractClock = realClock): void {
  describe(`${name}: presence contract`, () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    beforeEach(() => {
      clock = caseClock;
      clock.install();
    });
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
      clock.uninstall();
      clock = realClock;
    });

    const setup = (config: PresenceConfig = TEST_CONFIG) => presenceWithEdge(factory, config, cleanups);

    /** A connected, heartbeating session that watches `userIds`. */
    async function watcher(edge: Edge, presence: Presence, userIds: string[]) {
      const r = route(randomUUID(), "watcher", "edge-w");
      await edge.connect(r);
      const initial = await presence.subscribe(r, userIds);
      return { route: r, initial };
    }

    it("refuses a device past maxDevicesPerUser with QUOTA_EXCEEDED, changing nothing; a connected device may still take over, and a freed place is taken", async () => {
      const { presence, edge } = await setup({ ...TEST_CONFIG, maxDevicesPerUser: 2 });
      const alice = randomUUID();
      const [phone, laptop] = [route(alice, "phone"), route(alice, "laptop")];
      await edge.connect(phone);
      await edge.connect(laptop);
      const tablet = route(alice, "tablet");
      const refused = await presence.connect(tablet, true).then(() => null, (e: unknown) => e);
      expect(refused).toBeInstanceOf(ChatError);
      expect((refused as ChatError).code).toBe(ErrorCode.ERROR_CODE_QUOTA_EXCEEDED);
      expect(new Set((await presence.routes([alice])).map((r) => r.deviceId))).toEqual(new Set(["phone", "laptop"]));
      // Another user is not held to alice's count.
      await edge.connect(route(randomUUID(), "tablet"));
      // The phone reconnecting (takeover of its own device) is not a new device.
      const phone2 = route(alice, "phone");
      expect((await edge.connect(phone2, true))?.sessionId).toBe(phone.sessionId);
      edge.routes.delete(phone);
      await edge.disconnect(laptop);
      await edge.connect(tablet);
      expect(new Set((await presence.routes([alice])).map((r) => r.deviceId))).toEqual(new Set(["phone", "tablet"]));
    });

    it("unwatch ends every subscription to the user; a later one gets the changes again", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      const before = await watcher(edge, presence, [alice]);
      await presence.unwatch(alice);
      const after = await watcher(edge, presence, [alice]);
      await edge.connect(route(alice, "phone"));
      await waitFor("online published", () => rec.of(alice).length === 1);
      expect(rec.of(alice)[0]!.subscribers.map((s) => s.sessionId)).toEqual([after.route.sessionId]);
      expect(before.route.sessionId).not.toBe(after.route.sessionId);
    });

    it("unwatch with a watcher ends only that user's subscriptions (a block): others still get the changes", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      const blocked = await watcher(edge, presence, [alice]);
      const other = await watcher(edge, presence, [alice]);
      await presence.unwatch(alice, blocked.route.userId);
      await edge.connect(route(alice, "phone"));
      await waitFor("online published", () => rec.of(alice).length === 1);
      expect(rec.of(alice)[0]!.subscribers.map((s) => s.sessionId)).toEqual([other.route.sessionId]);
    });

    it("keeps a user online while any device is, and publishes online once", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      const w = await watcher(edge, presence, [alice]);
      expect(w.initial).toEqual([{ userId: alice, status: OFFLINE, lastActiveAtMs: 0 }]);
      const phone = route(alice, "phone");
      const laptop = route(alice, "laptop", "edge-2");
      await edge.connect(phone);
      await waitFor("online published", () => rec.statuses(alice).length === 1);
      await edge.connect(laptop);
      expect(new Set((await presence.routes([alice])).map((r) => r.sessionId))).toEqual(new Set([phone.sessionId, laptop.sessionId]));
      await edge.disconnect(phone);
      expect((await presence.routes([alice])).map((r) => r.sessionId)).toEqual([laptop.sessionId]);
      // Well past grace + sweep: the laptop keeps alice online.
      await sleep(TEST_CONFIG.graceMs + TEST_CONFIG.timeoutMs);
      expect((await presence.query([alice]))[0]!.status).toBe(ONLINE);
      expect(rec.statuses(alice)).toEqual([ONLINE]);
      expect(rec.of(alice)[0]!.subscribers.map((s) => s.sessionId)).toEqual([w.route.sessionId]);
      // The last device leaving turns her offline after the grace period.
      await edge.disconnect(laptop);
      await waitFor("offline published", () => rec.statuses(alice).length === 2);
      expect(rec.statuses(alice)).toEqual([ONLINE, OFFLINE]);
      expect(await presence.routes([alice])).toEqual([]);
    });

    it("publishes nothing for a drop and reconnect inside the grace period", async () => {
      const { rec, presence, edge } = await setup({ timeoutMs: TEST_CONFIG.timeoutMs, graceMs: 1_500 });
      const alice = randomUUID();
      await watcher(edge, presence, [alice]);
      const first = route(alice);
      await edge.connect(first);
      await waitFor("online published", () => rec.statuses(alice).length === 1);
      await edge.disconnect(first);
      expect((await presence.query([alice]))[0]!.status).toBe(ONLINE); // still inside grace
      const again = route(alice);
      await edge.connect(again);
      await sleep(2_000);
      expect(rec.statuses(alice)).toEqual([ONLINE]);
      expect((await presence.query([alice]))[0]!.status).toBe(ONLINE);
      expect((await presence.routes([alice])).map((r) => r.sessionId)).toEqual([again.sessionId]);
    });

    it("turns offline after the grace period, publishing once with last_active_at", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      await watcher(edge, presence, [alice]);
      const phone = route(alice);
      await edge.connect(phone);
      await waitFor("online published", () => rec.statuses(alice).length === 1);
      const online = rec.of(alice)[0]!.update;
      expect(online.lastActiveAtMs).toBeGreaterThan(Date.now() - 5_000);
      await sleep(300); // a few heartbeats move last_active_at on
      const before = Date.now();
      await edge.disconnect(phone);
      const disconnectedAt = Date.now();
      await waitFor("offline published", () => rec.statuses(alice).length === 2);
      const offlineSeenAt = Date.now();
      const off = rec.of(alice)[1]!.update;
      expect(off.status).toBe(OFFLINE);
      expect(off.lastActiveAtMs).toBeGreaterThanOrEqual(before - 50);
      expect(off.lastActiveAtMs).toBeLessThanOrEqual(disconnectedAt + 50);
      expect(offlineSeenAt - before).toBeGreaterThanOrEqual(TEST_CONFIG.graceMs - 50);
      expect((await presence.query([alice]))[0]).toEqual(off);
      await sleep(TEST_CONFIG.graceMs + 500);
      expect(rec.statuses(alice)).toEqual([ONLINE, OFFLINE]);
    });

    it("drops a device whose edge stopped heartbeating and turns the user offline", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      await watcher(edge, presence, [alice]);
      const phone = route(alice);
      await presence.connect(phone, false); // not on the heartbeating edge: a crashed edge
      await waitFor("online published", () => rec.statuses(alice).length === 1);
      await waitFor("device dropped", async () => (await presence.routes([alice])).length === 0);
      await waitFor("offline published", () => rec.statuses(alice).length === 2);
      expect(rec.statuses(alice)).toEqual([ONLINE, OFFLINE]);
      expect((await presence.query([alice]))[0]!.status).toBe(OFFLINE);
    });

    it("refuses a second session on a live device unless takeover, which returns the replaced route", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      await watcher(edge, presence, [alice]);
      const first = route(alice, "phone", "edge-1");
      await edge.connect(first);
      expect(await edge.connect(first)).toBeUndefined(); // the same session again is fine
      const second = { ...route(alice, "phone", "edge-2") };
      const err = (await presence.connect(second, false).catch((e: unknown) => e)) as ChatError;
      expect(err).toBeInstanceOf(ChatError);
      expect(err.code).toBe(ErrorCode.ERROR_CODE_DEVICE_IN_USE);
      expect((await presence.routes([alice])).map((r) => r.sessionId)).toEqual([first.sessionId]);
      expect(await edge.connect(second, true)).toEqual(first);
      expect(await presence.routes([alice])).toEqual([second]);
      // The replaced session's late disconnect changes nothing.
      await edge.disconnect(first);
      expect(await presence.routes([alice])).toEqual([second]);
      await sleep(TEST_CONFIG.graceMs + 400);
      expect(rec.statuses(alice)).toEqual([ONLINE]);
      expect((await presence.query([alice]))[0]!.status).toBe(ONLINE);
    });

    it("a takeover drops the replaced session's subscriptions", async () => {
      const { rec, presence, edge } = await setup();
      const [alice, bob] = [randomUUID(), randomUUID()];
      // Many rounds of takeover-and-subscribe on one device, each replaced session disconnecting late.
      let current = route(alice, "phone");
      await edge.connect(current);
      for (let i = 0; i < 20; i++) {
        await presence.subscribe(current, [bob]);
        const next = route(alice, "phone");
        expect(await edge.connect(next, true)).toEqual(current);
        await edge.disconnect(current);
        current = next;
      }
      // The device's current session never subscribed: bob coming online goes to nobody.
      await edge.connect(route(bob));
      await waitFor("bob online", async () => (await presence.query([bob]))[0]!.status === ONLINE);
      expect(rec.of(bob)).toEqual([]);
    });

    it("a heartbeat from an unknown device re-registers it and brings its user back online", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      const w = await watcher(edge, presence, [alice]);
      // What edges send after presence lost its state (a restart): a route it has never seen.
      const phone = route(alice, "phone", "edge-2");
      // Named in the answer: its route is new to presence, so the edge moves the user's route
      // version (chat's route cache fetches it again; docs/performance.md, "The route cache").
      expect(await presence.heartbeat([phone])).toEqual([alice]);
      expect(await presence.routes([alice])).toEqual([phone]);
      expect(await presence.heartbeat([phone])).toEqual([]);
      expect((await presence.query([alice]))[0]!.status).toBe(ONLINE);
      await waitFor("online published", () => rec.statuses(alice).length === 1);
      expect(rec.of(alice)[0]!.subscribers.map((s) => s.sessionId)).toEqual([w.route.sessionId]);
      // A device known under another session is not taken over by a heartbeat (a replaced session's edge).
      const stale = route(alice, "phone", "edge-3");
      expect(await presence.heartbeat([stale])).toEqual([]);
      expect(await presence.routes([alice])).toEqual([phone]);
    });

    it("a heartbeat in flight for a session that disconnected or was replaced does not bring it back", async () => {
      const { presence, edge } = await setup();
      const [alice, bob] = [randomUUID(), randomUUID()];
      const gone = route(alice);
      await edge.connect(gone);
      await edge.disconnect(gone);
      await presence.heartbeat([gone]);
      expect(await presence.routes([alice])).toEqual([]);
      const first = route(bob, "phone");
      const second = route(bob, "phone");
      await edge.connect(first);
      await edge.connect(second, true);
      await edge.disconnect(second);
      await presence.heartbeat([first]);
      expect(await presence.routes([bob])).toEqual([]);
    });

    it("subscribe returns current statuses, and later changes reach every subscriber in one publish", async () => {
      const { rec, presence, edge } = await setup();
      const [alice, bob, nobody] = [randomUUID(), randomUUID(), randomUUID()];
      await edge.connect(route(alice));
      const w1 = await watcher(edge, presence, [alice, bob, nobody]);
      expect(w1.initial.map((u) => [u.userId, u.status])).toEqual([[alice, ONLINE], [bob, OFFLINE], [nobody, OFFLINE]]);
      expect(w1.initial[0]!.lastActiveAtMs).toBeGreaterThan(0);
      expect(w1.initial[2]!.lastActiveAtMs).toBe(0);
      const w2 = await watcher(edge, presence, [bob]);
      const bobPhone = route(bob);
      await edge.connect(bobPhone);
      await waitFor("bob online published", () => rec.statuses(bob).length === 1);
      const pub = rec.of(bob)[0]!;
      expect(pub.update.status).toBe(ONLINE);
      expect(pub.update.lastActiveAtMs).toBeGreaterThan(0);
      expect(new Set(pub.subscribers.map((s) => s.sessionId))).toEqual(new Set([w1.route.sessionId, w2.route.sessionId]));
      expect(pub.subscribers.find((s) => s.sessionId === w1.route.sessionId)).toEqual(w1.route);
      await edge.disconnect(bobPhone);
      await waitFor("bob offline published", () => rec.statuses(bob).length === 2);
      expect(rec.statuses(bob)).toEqual([ONLINE, OFFLINE]);
      expect(rec.statuses(alice)).toEqual([]); // alice was online before anyone watched
    });

    it("a disconnected subscriber's subscriptions are gone", async () => {
      const { rec, presence, edge } = await setup();
      const alice = randomUUID();
      const w = await watcher(edge, presence, [alice]);
      await edge.disconnect(w.route);
      await edge.connect(route(alice));
      await waitFor("alice online", async () => (await presence.query([alice]))[0]!.status === ONLINE);
      await sleep(300);
      expect(rec.of(alice)).toEqual([]);
    });

    it("answers a query of many users in order", async () => {
      const { presence, edge } = await setup();
      const ids = Array.from({ length: 500 }, () => randomUUID());
      const online = new Set(ids.filter((_, i) => i % 50 === 7));
      for (const id of online) await edge.connect(route(id));
      const res = await presence.query(ids);
      expect(res.map((u) => u.userId)).toEqual(ids);
      expect(res.map((u) => u.status)).toEqual(ids.map((id) => (online.has(id) ? ONLINE : OFFLINE)));
      const routes = await presence.routes(ids);
      expect(new Set(routes.map((r) => r.userId))).toEqual(online);
      expect(await presence.routes([])).toEqual([]);
      expect(await presence.query([])).toEqual([]);
    });
  });
}
