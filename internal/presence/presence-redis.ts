import type { Redis } from "ioredis";
import { redisClient, throttledReporter } from "../redis/client.js";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { PresenceStatus, type PresenceUpdate } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { infraErrorToChatError } from "../errors/infra.js";
import { tooManyDevices, type Presence, type PresenceConfig, type PublishFn } from "./presence.js";

export interface RedisPresenceOptions {
  /** REDIS_URL. */
  url: string;
  /** REDIS_PREFIX: every key starts with it (default `meshchat:`), so installations and tests can share a Redis. */
  prefix: string;
  /** Errors of the background sweep and of the connection (the client reconnects by itself). */
  onError?: (what: string, err: unknown) => void;
}

/** Users (or routes) per script call: bounds how long one call holds Redis. */
const BATCH = 500;
/** Expired devices and due users handled per sweep call. */
const SWEEP_LIMIT = 1_000;

/*
 * Keys (all under the prefix P; <u> user id, <d> device id, <s> session id):
 *   dev:<len(u)>:<u>:<d>  string, the device's Route as JSON, PX = timeout, refreshed by heartbeat:
 *                         a device whose edge stopped heartbeating is gone when it lapses.
 *   devs:<u>              hash d -> s: the user's devices (entries whose dev key lapsed are stale).
 *   beats                 zset <len(u)>:<u>:<d> -> last beat (ms, Redis clock): the sweep finds
 *                         lapsed devices here (more reliable than keyspace notifications).
 *   st:<u>                hash on ("1" = subscribers last saw online), la (last_active_at ms).
 *   due                   zset u -> time the user turns offline unless a device comes back (grace).
 *   subs:<u>              hash s -> subscriber Route JSON: sessions watching u.
 *   watch:<s>             set of users session s watches; PX = 2 x timeout refreshed by the
 *                         session's heartbeat, deleted on disconnect: a subs entry whose watch
 *                         key is gone is stale and dropped when next read.
 *   gone:<s>              tombstone (PX = timeout) of a disconnected or replaced session, so a
 *                         heartbeat already in flight does not bring it back.
 * Every state change is one Lua script, so several presence instances on the same Redis agree,
 * and a transition (online / offline) is decided by exactly one script call, whose caller
 * publishes it: one delivery per change across instances. Time is Redis's (TIME), so instance
 * clocks do not matter. Scripts build key names from the prefix: one Redis, not Redis Cluster.
 */
const PRELUDE = `
local P = ARGV[1]
local GRACE = tonumber(ARGV[2])
local TIMEOUT = tonumber(ARGV[3])
local BEATS = P .. 'beats'
local DUE = P .. 'due'
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function member(u, d) return #u .. ':' .. u .. ':' .. d end
local function split(m)
  local n, rest = string.match(m, '^(%d+):(.*)$')
  n = tonumber(n)
  return string.sub(rest, 1, n), string.sub(rest, n + 2)
end
local function dkey(u, d) return P .. 'dev:' .. member(u, d) end
local function devs(u) return P .. 'devs:' .. u end
local function st(u) return P .. 'st:' .. u end
local function subk(u) return P .. 'subs:' .. u end
local function watch(s) return P .. 'watch:' .. s end
local function gone(s) return P .. 'gone:' .. s end
local function unsubscribe(s)
  for _, u in ipairs(redis.call('SMEMBERS', watch(s))) do redis.call('HDEL', subk(u), s) end
  redis.call('DEL', watch(s))
end
-- Live devices of u; drops the ones whose key lapsed (and their subscriptions).
local function live(u)
  local n = 0
  local h = redis.call('HGETALL', devs(u))
  for i = 1, #h, 2 do
    if redis.call('EXISTS', dkey(u, h[i])) == 1 then
      n = n + 1
    else
      redis.call('HDEL', devs(u), h[i])
      redis.call('ZREM', BEATS, member(u, h[i]))
      unsubscribe(h[i + 1])
    end
  end
  return n
end
-- Records the new status and, when someone watches, an event for the caller to publish.
local function emit(u, on, out)
  redis.call('HSET', st(u), 'on', on)
  local la = redis.call('HGET', st(u), 'la') or '0'
  local subs = {}
  local h = redis.call('HGETALL', subk(u))
  for i = 1, #h, 2 do
    if redis.call('EXISTS', watch(h[i])) == 1 then subs[#subs + 1] = h[i + 1] else redis.call('HDEL', subk(u), h[i]) end
  end
  if #subs > 0 then out[#out + 1] = { u, on, la, subs } end
end
-- After any change of u's devices: online now, or offline once the grace period has passed.
local function changed(u, t, out)
  local on = redis.call('HGET', st(u), 'on')
  if live(u) > 0 then
    redis.call('ZREM', DUE, u)
    if on ~= '1' then emit(u, '1', out) end
  elseif on == '1' then
    redis.call('ZADD', DUE, 'NX', t + GRACE, u)
  end
end
`;

const SCRIPTS = {
  // ARGV: P GRACE TIMEOUT route u d s takeover maxDevices -> { 'in_use' } | { 'too_many' } | { 'ok', replacedRouteJson or '', events }
  presenceConnect: `
local t = now()
local route, u, d, s = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local dk = dkey(u, d)
local cur = redis.call('GET', dk)
local max = tonumber(ARGV[9])
if not cur and max > 0 and live(u) >= max then return { 'too_many' } end
local replaced = ''
if cur then
  local old = redis.call('HGET', devs(u), d)
  if old ~= s then
    if ARGV[8] ~= '1' then return { 'in_use' } end
    replaced = cur
    if old then
      unsubscribe(old)
      redis.call('SET', gone(old), '1', 'PX', TIMEOUT)
    end
  end
end
redis.call('SET', dk, route, 'PX', TIMEOUT)
redis.call('HSET', devs(u), d, s)
redis.call('ZADD', BEATS, t, member(u, d))
redis.call('HSET', st(u), 'la', t)
local out = {}
changed(u, t, out)
return { 'ok', replaced, out }
`,
  // ARGV: P GRACE TIMEOUT u -> 0 (the watchers' watch sets may still name u: harmless, HDEL of a missing hash)
  // ARGV: P GRACE TIMEOUT u [watcher]: every subscription to u, or only the watcher's sessions'.
  presenceUnwatch: `
local u, w = ARGV[4], ARGV[5]
if not w or w == '' then
  redis.call('DEL', subk(u))
  return 0
end
local h = redis.call('HGETALL', subk(u))
for i = 1, #h, 2 do
  if cjson.decode(h[i + 1]).userId == w then
    redis.call('HDEL', subk(u), h[i])
    redis.call('SREM', watch(h[i]), u)
  end
end
return 0
`,
  // ARGV: P GRACE TIMEOUT u d s -> events
  presenceDisconnect: `
local t = now()
local u, d, s = ARGV[4], ARGV[5], ARGV[6]
local out = {}
local owner = redis.call('HGET', devs(u), d)
local exists = redis.call('EXISTS', dkey(u, d)) == 1
if exists and owner ~= s then return out end
redis.call('SET', gone(s), '1', 'PX', TIMEOUT)
unsubscribe(s)
if owner == s then
  redis.call('DEL', dkey(u, d))
  redis.call('HDEL', devs(u), d)
  redis.call('ZREM', BEATS, member(u, d))
  if exists then redis.call('HSET', st(u), 'la', t) end
  changed(u, t, out)
end
return out
`,
  // ARGV: P GRACE TIMEOUT (route u d s)* -> events
  presenceHeartbeat: `
local t = now()
local out = {}
for i = 4, #ARGV, 4 do
  local route, u, d, s = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local dk = dkey(u, d)
  if redis.call('EXISTS', dk) == 1 then
    if redis.call('HGET', devs(u), d) == s then
      redis.call('PEXPIRE', dk, TIMEOUT)
      redis.call('ZADD', BEATS, t, member(u, d))
    end
    if redis.call('EXISTS', st(u)) == 1 then redis.call('HSET', st(u), 'la', t) end
  elseif redis.call('EXISTS', gone(s)) == 0 then
    -- Recovery: the device is missing although its edge still holds the session. Redis
    -- restarted or lost its data, or the sweep dropped a device whose edge was slow: the
    -- heartbeat carries the full route, so re-create it and bring the user back online.
    redis.call('SET', dk, route, 'PX', TIMEOUT)
    redis.call('HSET', devs(u), d, s)
    redis.call('ZADD', BEATS, t, member(u, d))
    redis.call('HSET', st(u), 'la', t)
    changed(u, t, out)
  elseif redis.call('EXISTS', st(u)) == 1 then
    redis.call('HSET', st(u), 'la', t)
  end
  redis.call('PEXPIRE', watch(s), 2 * TIMEOUT)
end
return out
`,
  // ARGV: P GRACE TIMEOUT limit -> events
  presenceSweep: `
local t = now()
local out = {}
local limit = tonumber(ARGV[4])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', BEATS, '-inf', '(' .. (t - TIMEOUT), 'LIMIT', 0, limit)) do
  redis.call('ZREM', BEATS, m)
  local u, d = split(m)
  local s = redis.call('HGET', devs(u), d)
  if s then
    unsubscribe(s)
    redis.call('HDEL', devs(u), d)
  end
  redis.call('DEL', dkey(u, d))
  changed(u, t, out)
end
-- Compare-and-set: the ZREM makes whichever instance gets here first the only one to publish.
for _, u in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', t, 'LIMIT', 0, limit)) do
  redis.call('ZREM', DUE, u)
  if redis.call('HGET', st(u), 'on') == '1' and live(u) == 0 then emit(u, '0', out) end
end
return out
`,
  // ARGV: P GRACE TIMEOUT s route u* -> { {on, la} }
  presenceSubscribe: `
local s, route = ARGV[4], ARGV[5]
local out = {}
for i = 6, #ARGV do
  local u = ARGV[i]
  redis.call('HSET', subk(u), s, route)
  redis.call('SADD', watch(s), u)
  local v = redis.call('HMGET', st(u), 'on', 'la')
  out[#out + 1] = { v[1] or '0', v[2] or '0' }
end
redis.call('PEXPIRE', watch(s), 2 * TIMEOUT)
return out
`,
  // ARGV: P GRACE TIMEOUT u* -> { {on, la} }
  presenceQuery: `
local out = {}
for i = 4, #ARGV do
  local v = redis.call('HMGET', st(ARGV[i]), 'on', 'la')
  out[#out + 1] = { v[1] or '0', v[2] or '0' }
end
return out
`,
  // ARGV: P GRACE TIMEOUT u* -> route JSON of every live device
  presenceRoutes: `
local out = {}
for i = 4, #ARGV do
  local u = ARGV[i]
  local h = redis.call('HKEYS', devs(u))
  if #h > 0 then
    local keys = {}
    for j, d in ipairs(h) do keys[j] = dkey(u, d) end
    for _, r in ipairs(redis.call('MGET', unpack(keys))) do
      if r then out[#out + 1] = r end
    end
  end
end
return out
`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Scripts = { [K in ScriptName]: (...args: (string | number)[]) => Promise<unknown> };
/** [userId, on "1"/"0", last active ms, subscriber route JSONs] */
type RawEvent = [string, string, string | number, string[]];

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
 * Online state in Redis, shared by any number of presence instances (production profile).
 * Same behaviour as MemoryPresence; see the key layout above.
 *
 * Recovery: if Redis restarts empty (or its data is otherwise lost), edges keep heartbeating
 * every device they hold every few seconds with the full Route, and a heartbeat for a device
 * Redis does not know re-creates it and brings the user back online, so routes and statuses
 * come back within one heartbeat period. Subscriptions are not carried by heartbeats: they
 * come back when the clients subscribe again.
 */
export class RedisPresence implements Presence {
  private readonly redis: Redis;
  private readonly scripts: Scripts;
  private readonly sweeper: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;

  private constructor(
    private readonly config: PresenceConfig,
    private readonly publish: PublishFn,
    private readonly options: RedisPresenceOptions,
  ) {
    this.redis = redisClient(options.url, {
      lazyConnect: true,
      commandTimeoutMs: 3_000,
      connectTimeoutMs: 3_000,
      report: throttledReporter((err) => options.onError?.("redis connection", err)),
    });
    for (const [name, body] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { numberOfKeys: 0, lua: PRELUDE + body });
    this.scripts = this.redis as unknown as Scripts;
    // Every instance sweeps (the scripts make it harmless): often enough that going offline is
    // published close to the end of the grace period, not only at the timeout's pace.
    const every = Math.max(100, Math.floor(Math.min(config.timeoutMs / 3, config.graceMs / 2, 1_000)));
    this.sweeper = setInterval(() => void this.sweep(), every);
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
    const res = (await this.call("presenceConnect", routeJson(route), route.userId, route.deviceId, route.sessionId, takeover ? "1" : "0", String(max))) as [string, string?, RawEvent[]?];
    if (res[0] === "in_use") throw new ChatError(ErrorCode.ERROR_CODE_DEVICE_IN_USE, "this device id is in use by another live session");
    if (res[0] === "too_many") throw tooManyDevices(max);
    this.emit(res[2] ?? []);
    return res[1] ? parseRoute(res[1]) : undefined;
  }

  async disconnect(route: Route): Promise<void> {
    this.emit((await this.call("presenceDisconnect", route.userId, route.deviceId, route.sessionId)) as RawEvent[]);
  }

  async heartbeat(routes: Route[]): Promise<void> {
    // One atomic script call per batch; the calls of a large batch are pipelined on the connection.
    await Promise.all(
      chunks(routes, BATCH).map(async (batch) => {
        const args = batch.flatMap((r) => [routeJson(r), r.userId, r.deviceId, r.sessionId]);
        this.emit((await this.call("presenceHeartbeat", ...args)) as RawEvent[]);
      }),
    );
  }

  async routes(userIds: string[]): Promise<Route[]> {
    const res = await Promise.all(chunks(userIds, BATCH).map((ids) => this.call("presenceRoutes", ...ids) as Promise<string[]>));
    return res.flat().map(parseRoute);
  }

  async unwatch(userId: string, watcherId?: string): Promise<void> {
    await this.call("presenceUnwatch", userId, watcherId ?? "");
  }

  async query(userIds: string[]): Promise<PresenceUpdate[]> {
    const res = await Promise.all(chunks(userIds, BATCH).map((ids) => this.call("presenceQuery", ...ids) as Promise<[string, string][]>));
    return res.flat().map((v, i) => statusOf(userIds[i]!, v));
  }

  async subscribe(subscriber: Route, userIds: string[]): Promise<PresenceUpdate[]> {
    const res = await Promise.all(
      chunks(userIds, BATCH).map((ids) => this.call("presenceSubscribe", subscriber.sessionId, routeJson(subscriber), ...ids) as Promise<[string, string][]>),
    );
    return res.flat().map((v, i) => statusOf(userIds[i]!, v));
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

  /** Drops devices that stopped heartbeating and turns users offline whose grace period ended. Any instance may run it. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      this.emit((await this.call("presenceSweep", SWEEP_LIMIT)) as RawEvent[]);
    } catch (err) {
      this.options.onError?.("presence sweep", err);
    } finally {
      this.sweeping = false;
    }
  }

  private async call(script: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    try {
      return await this.scripts[script](this.options.prefix, this.config.graceMs, this.config.timeoutMs, ...args);
    } catch (err) {
      throw redisErrorToChatError(err);
    }
  }

  private emit(events: RawEvent[]): void {
    for (const [userId, on, la, subs] of events) {
      const status = on === "1" ? PresenceStatus.PRESENCE_STATUS_ONLINE : PresenceStatus.PRESENCE_STATUS_OFFLINE;
      this.publish({ userId, status, lastActiveAtMs: Number(la) || 0 }, subs.map(parseRoute));
    }
  }
}
