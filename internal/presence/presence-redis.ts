import { randomInt } from "node:crypto";
import { redisOrClusterClient, throttledReporter, type RedisOrCluster } from "../redis/client.js";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { PresenceStatus, type PresenceUpdate } from "../../gen/chat/v1/client.js";
import { ConfigError } from "../config/env.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { infraErrorToChatError } from "../errors/infra.js";
import { tooManyDevices, type Presence, type PresenceConfig, type PublishFn } from "./presence.js";
import { SCRIPTS, shardKeys, type ScriptName } from "./presence-redis-scripts.js";
import { byPresenceShard, PRESENCE_SHARDS, presenceShard, shardKeyBase } from "./presence-shard.js";

export interface RedisPresenceOptions {
  /**
   * PRESENCE_REDIS_URL (default REDIS_URL): one Redis (`redis://`), or a Redis Cluster
   * (`redis+cluster://host:port,host:port`, see internal/redis/client.ts).
   */
  url: string;
  /** REDIS_PREFIX: every key starts with it (default `meshchat:`), so installations and tests can share a Redis. */
  prefix: string;
  /** Errors of the background sweep, of the connection (the client reconnects by itself) and of the follow-ups in other shards. */
  onError?: (what: string, err: unknown) => void;
}

/** Users (or routes, or sessions) per script call: bounds how long one call holds Redis. */
const BATCH = 500;
/** Expired devices and due users handled per sweep call (one shard). */
const SWEEP_LIMIT = 1_000;
/** A round of the sweep over every shard is cut into this many ticks, so its calls do not all land at once. */
const SWEEP_SLICES = 8;

type Scripts = { [K in ScriptName]: (...args: (string | number)[]) => Promise<unknown> };
/** [userId, on "1"/"0", last active ms, candidate subscribers: session id, route JSON, ...] */
type RawEvent = [string, string, string | number, string[]];
/** [session id, users it watched]: a session that ended in the script's shard. */
type RawEnd = [string, string[]];
/** What a state change returns for the caller to finish in other shards. */
type Changes = [RawEvent[], RawEnd[]];

function routeJson(r: Route): string {
  return JSON.stringify({ userId: r.userId, deviceId: r.deviceId, sessionId: r.sessionId, edgeId: r.edgeId, edgeAddress: r.edgeAddress });
}

function parseRoute(json: string): Route {
  const r = JSON.parse(json) as Partial<Route>;
  return { userId: r.userId ?? "", deviceId: r.deviceId ?? "", sessionId: r.sessionId ?? "", edgeId: r.edgeId ?? "", edgeAddress: r.edgeAddress ?? "" };
}

function statusOf(userId: string, [on, la]: [string, string | number]): PresenceUpdate {
  return { userId, status: on === "1" ? PresenceStatus.PRESENCE_STATUS_ONLINE : PresenceStatus.PRESENCE_STATUS_OFFLINE, lastActiveAtMs: Number(la) || 0 };
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Replies Redis gives while it cannot serve (loading, failing over, a script running too long). */
const RETRYABLE_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

/**
 * Redis down or restarting: a retryable UNAVAILABLE (calls fail fast, none hang: no offline
 * queue, one retry, a command timeout). A script error (a bug) stays INTERNAL.
 */
export function redisErrorToChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  const infra = infraErrorToChatError(err);
  if (infra) return infra;
  const e = err as { name?: unknown; message?: unknown } | null;
  const message = typeof e?.message === "string" ? e.message : "";
  if (e?.name === "ReplyError" && !RETRYABLE_REPLY.test(message)) return ChatError.from(err);
  return ChatError.unavailable("redis unavailable", err);
}

/**
 * Online state in Redis, shared by any number of presence instances (production profile), on
 * one Redis or on a Redis Cluster: users are spread over PRESENCE_SHARDS hash-tagged shards
 * (presence-shard.ts) and every script call stays in one (key layout: presence-redis-scripts.ts).
 * Same behaviour as MemoryPresence.
 *
 * Recovery: if Redis restarts empty (or its data is otherwise lost), edges keep heartbeating
 * every device they hold every few seconds with the full Route, and a heartbeat for a device
 * Redis does not know re-creates it and brings the user back online, so routes and statuses
 * come back within one heartbeat period. Subscriptions are not carried by heartbeats: they
 * come back when the clients subscribe again.
 */
export class RedisPresence implements Presence {
  private readonly redis: RedisOrCluster;
  private readonly scripts: Scripts;
  private readonly sweeper: NodeJS.Timeout;
  /** The first shard of the next sweep tick: instances start at random ones, so their sweeps fall on different shards. */
  private nextSweep = randomInt(PRESENCE_SHARDS);
  private sweeping = false;
  private closed = false;

  private constructor(
    private readonly config: PresenceConfig,
    private readonly publish: PublishFn,
    private readonly options: RedisPresenceOptions,
  ) {
    // A brace in the prefix would become the hash tag of every key: all users in one slot.
    if (/[{}]/.test(options.prefix)) throw new ConfigError(`REDIS_PREFIX=${options.prefix}: presence keys cannot have { or } in their prefix (they carry a Redis Cluster hash tag)`);
    this.redis = redisOrClusterClient(options.url, {
      lazyConnect: true,
      commandTimeoutMs: 3_000,
      connectTimeoutMs: 3_000,
      report: throttledReporter((err) => options.onError?.("redis connection", err)),
    });
    for (const [name, lua] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { numberOfKeys: 2, lua });
    this.scripts = this.redis as unknown as Scripts;
    // Every instance sweeps every shard once a round (the scripts make it harmless), a round
    // often enough that going offline is published close to the end of the grace period, not
    // only at the timeout's pace. Each tick takes the next slice of shards.
    const round = Math.max(100, Math.floor(Math.min(config.timeoutMs / 3, config.graceMs / 2, 1_000)));
    this.sweeper = setInterval(() => void this.sweep(), Math.max(10, Math.floor(round / SWEEP_SLICES)));
    this.sweeper.unref();
  }

  /** Connects (fails if Redis does not answer) and starts the sweep. */
  static async open(config: PresenceConfig, publish: PublishFn, options: RedisPresenceOptions): Promise<RedisPresence> {
    const p = new RedisPresence(config, publish, options);
    try {
      await p.redis.connect();
    } catch (err) {
      await p.close();
      throw redisErrorToChatError(err);
    }
    return p;
  }

  async connect(route: Route, takeover: boolean): Promise<Route | undefined> {
    const max = this.config.maxDevicesPerUser ?? 0;
    const args = [routeJson(route), route.userId, route.deviceId, route.sessionId, takeover ? "1" : "0", String(max)];
    const res = (await this.call(presenceShard(route.userId), "presenceConnect", ...args)) as [string, string?, RawEvent[]?, RawEnd[]?];
    if (res[0] === "in_use") throw new ChatError(ErrorCode.ERROR_CODE_DEVICE_IN_USE, "this device id is in use by another live session");
    if (res[0] === "too_many") throw tooManyDevices(max);
    await this.settle([res[2] ?? [], res[3] ?? []]);
    return res[1] ? parseRoute(res[1]) : undefined;
  }

  async disconnect(route: Route): Promise<void> {
    await this.settle((await this.call(presenceShard(route.userId), "presenceDisconnect", route.userId, route.deviceId, route.sessionId)) as Changes);
  }

  async heartbeat(routes: Route[]): Promise<string[]> {
    // One atomic script call per shard and batch; the calls are pipelined on the connections.
    const restored = await this.perShard(routes, (r) => r.userId, async (shard, batch) => {
      const args = batch.flatMap((r) => [routeJson(r), r.userId, r.deviceId, r.sessionId]);
      const [events, ends, users] = (await this.call(shard, "presenceHeartbeat", ...args)) as [...Changes, string[]];
      await this.settle([events, ends]);
      return users;
    });
    return [...new Set(restored.flat())];
  }

  async routes(userIds: string[]): Promise<Route[]> {
    const res = await this.perShard(userIds, (u) => u, (shard, ids) => this.call(shard, "presenceRoutes", ...ids) as Promise<string[]>);
    return res.flat().map(parseRoute);
  }

  async unwatch(userId: string, watcherId?: string): Promise<void> {
    await this.call(presenceShard(userId), "presenceUnwatch", userId, watcherId ?? "");
  }

  async query(userIds: string[]): Promise<PresenceUpdate[]> {
    return this.statuses(userIds, (shard, ids) => this.call(shard, "presenceQuery", ...ids));
  }

  async subscribe(subscriber: Route, userIds: string[]): Promise<PresenceUpdate[]> {
    // The watch set first: a subs entry is then never there without it, except after the session
    // ended meanwhile, and such an entry is dropped when next read.
    const home = presenceShard(subscriber.userId);
    await Promise.all(chunks(userIds, BATCH).map((ids) => this.call(home, "presenceWatch", subscriber.sessionId, ...ids)));
    const route = routeJson(subscriber);
    return this.statuses(userIds, (shard, ids) => this.call(shard, "presenceSubscribe", subscriber.sessionId, route, ...ids));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  /**
   * One tick of the sweep, on the next slice of shards: drops devices that stopped heartbeating
   * and turns users offline whose grace period ended. Any instance may run it. A tick whose
   * calls are still running when the next comes makes that one skip, so a slow Redis gets no pile-up.
   */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    const size = Math.ceil(PRESENCE_SHARDS / SWEEP_SLICES);
    const shards = Array.from({ length: size }, (_, i) => (this.nextSweep + i) % PRESENCE_SHARDS);
    this.nextSweep = (this.nextSweep + size) % PRESENCE_SHARDS;
    try {
      await Promise.all(shards.map((shard) => this.sweepShard(shard)));
    } catch (err) {
      this.options.onError?.("presence sweep", err);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * A whole round of the sweep now, every shard once, beside the timer's ticks (the scripts
   * make overlapping sweeps harmless): once it returns, every device that had lapsed and every
   * user whose grace had ended when it started has been handled.
   */
  async sweepAll(): Promise<void> {
    await Promise.all(Array.from({ length: PRESENCE_SHARDS }, (_, shard) => this.sweepShard(shard)));
  }

  private async sweepShard(shard: number): Promise<void> {
    await this.settle((await this.call(shard, "presenceSweep", SWEEP_LIMIT)) as Changes);
  }

  /**
   * Finishes a state change in the other shards, after its own shard decided it: removes the
   * sessions that ended from the subscriptions they held, and publishes each transition to its
   * candidate subscribers that still watch (dropping the others). The change is done whatever
   * happens here: a failure is reported and leaves only stale subs entries, which later reads
   * skip; a failed check of who still watches publishes to every candidate rather than to none.
   */
  private async settle([events, ends]: Changes): Promise<void> {
    if (events.length === 0 && ends.length === 0) return;
    const drops = ends.flatMap(([sessionId, users]) => users.map((userId) => ({ userId, sessionId })));
    const candidates = new Map<string, Route>();
    for (const [, , , subs] of events) for (let i = 0; i < subs.length; i += 2) candidates.set(subs[i]!, parseRoute(subs[i + 1]!));
    const watching = await this.stillWatching([...candidates.values()]);
    for (const [userId, on, la, subs] of events) {
      const to: Route[] = [];
      for (let i = 0; i < subs.length; i += 2) {
        if (!watching || watching.has(subs[i]!)) to.push(candidates.get(subs[i]!)!);
        else drops.push({ userId, sessionId: subs[i]! });
      }
      if (to.length > 0) this.publish(statusOf(userId, [on, la]), to);
    }
    await this.perShard(drops, (d) => d.userId, (shard, batch) => this.call(shard, "presenceDropSubs", ...batch.flatMap((d) => [d.userId, d.sessionId]))).catch((err: unknown) =>
      this.options.onError?.("presence subscriptions", err),
    );
  }

  /** The sessions among these subscribers whose watch key is still there; undefined when that could not be read. */
  private async stillWatching(subscribers: Route[]): Promise<Set<string> | undefined> {
    if (subscribers.length === 0) return new Set();
    try {
      const live = new Set<string>();
      await this.perShard(subscribers, (r) => r.userId, async (shard, batch) => {
        const res = (await this.call(shard, "presenceWatching", ...batch.map((r) => r.sessionId))) as number[];
        batch.forEach((r, i) => { if (res[i] === 1) live.add(r.sessionId); });
      });
      return live;
    } catch (err) {
      this.options.onError?.("presence subscriptions", err);
      return undefined;
    }
  }

  /** Statuses of the users in their order, read per shard and batch. */
  private async statuses(userIds: string[], read: (shard: number, ids: string[]) => Promise<unknown>): Promise<PresenceUpdate[]> {
    const out: PresenceUpdate[] = new Array(userIds.length);
    await this.perShard(userIds.map((_, i) => i), (i) => userIds[i]!, async (shard, idx) => {
      const res = (await read(shard, idx.map((i) => userIds[i]!))) as [string, string][];
      idx.forEach((i, k) => { out[i] = statusOf(userIds[i]!, res[k]!); });
    });
    return out;
  }

  /** fn once per shard and batch of at most BATCH of the items in it, all at once (pipelined). */
  private perShard<T, R>(items: T[], userOf: (item: T) => string, fn: (shard: number, batch: T[]) => Promise<R>): Promise<R[]> {
    const calls: Promise<R>[] = [];
    for (const [shard, list] of byPresenceShard(items, userOf)) for (const batch of chunks(list, BATCH)) calls.push(fn(shard, batch));
    return Promise.all(calls);
  }

  private async call(shard: number, script: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const base = shardKeyBase(this.options.prefix, shard);
    try {
      return await this.scripts[script](...shardKeys(base), base, this.config.graceMs, this.config.timeoutMs, ...args);
    } catch (err) {
      throw redisErrorToChatError(err);
    }
  }
}
