/*
 * The Lua scripts of RedisPresence and the keys they keep.
 *
 * Keys (all under the prefix P and a shard's hash tag, written B = P{<shard>}; <u> user id,
 * <d> device id, <s> session id; a user's shard is presenceShard(u), a session's is its user's):
 *   B dev:<len(u)>:<u>:<d>  string, the device's Route as JSON, PX = timeout, refreshed by heartbeat:
 *                           a device whose edge stopped heartbeating is gone when it lapses.
 *   B devs:<u>              hash d -> s: the user's devices (entries whose dev key lapsed are stale).
 *   B beats                 zset <len(u)>:<u>:<d> -> last beat (ms, Redis clock) of the shard's
 *                           devices: the sweep finds lapsed ones here (more reliable than keyspace
 *                           notifications).
 *   B st:<u>                hash on ("1" = subscribers last saw online), la (last_active_at ms).
 *   B due                   zset u -> time the user turns offline unless a device comes back (grace).
 *   B subs:<u>              hash s -> subscriber Route JSON: sessions watching u (each session's
 *                           own keys are in its user's shard, usually another one).
 *   B watch:<s>             set of users session s watches; PX = 2 x timeout refreshed by the
 *                           session's heartbeat, deleted when the session ends: a subs entry whose
 *                           watch key is gone is stale, and dropped when it is next read.
 *   B gone:<s>              tombstone (PX = timeout) of a disconnected or replaced session, so a
 *                           heartbeat already in flight does not bring it back.
 *
 * Every call runs in one shard: KEYS[1] and KEYS[2] are the shard's beats and due, which route
 * the call (Redis Cluster sends a script to the node of its keys' slot) and fix its slot; the
 * other keys are computed inside, all with the same hash tag, because a script learns most of
 * them from what it reads (a user's devices, a session's watch set). Redis refuses a script
 * that reaches a key of another slot, so nothing here touches another shard.
 *
 * Every state change of a user is one script call in the user's shard, so several presence
 * instances agree, and a transition (online / offline) is decided by exactly one call, whose
 * caller publishes it: one delivery per change across instances. Time is Redis's (TIME); on a
 * cluster each node's clock, kept close by NTP, and a user's times always come from one node.
 *
 * The one relation between shards is a subscription (watch:<s> in the watcher's shard, subs:<u>
 * in the watched user's). The scripts do their own shard's half and return the rest for the
 * caller to do in the other shards, in an order where a crash between the two leaves only
 * subs entries whose watch key is gone, which every later read ignores and drops:
 *   - a session that ends deletes its watch set here and returns `ends` (s, users it watched);
 *     the caller then removes s from each subs:<u> (presenceDropSubs, in u's shard);
 *   - a transition returns every subs entry of the user as candidates; the caller asks the
 *     watchers' shards which sessions still have a watch key (presenceWatching), publishes to
 *     those and drops the others (presenceDropSubs);
 *   - subscribing adds to the watch set first (presenceWatch), then the subs entries.
 */
const PRELUDE = `
local P = ARGV[1]
local GRACE = tonumber(ARGV[2])
local TIMEOUT = tonumber(ARGV[3])
local BEATS = KEYS[1]
local DUE = KEYS[2]
local events, ends = {}, {}
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
-- The session (of a user of this shard) is over: its watch set goes; the caller removes it from
-- the subs of the users it watched, which live in their own shards.
local function unsubscribe(s)
  local users = redis.call('SMEMBERS', watch(s))
  redis.call('DEL', watch(s))
  if #users > 0 then ends[#ends + 1] = { s, users } end
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
-- Records the new status and, when someone may watch, an event for the caller to publish
-- to those of its candidate subscribers (s, route JSON, ...) that are still watching.
local function emit(u, on)
  redis.call('HSET', st(u), 'on', on)
  local la = redis.call('HGET', st(u), 'la') or '0'
  local h = redis.call('HGETALL', subk(u))
  if #h > 0 then events[#events + 1] = { u, on, la, h } end
end
-- After any change of u's devices: online now, or offline once the grace period has passed.
local function changed(u, t)
  local on = redis.call('HGET', st(u), 'on')
  if live(u) > 0 then
    redis.call('ZREM', DUE, u)
    if on ~= '1' then emit(u, '1') end
  elseif on == '1' then
    redis.call('ZADD', DUE, 'NX', t + GRACE, u)
  end
end
`;

/** Each script's ARGV after P GRACE TIMEOUT, and what it returns ("changes" = { events, ends }). */
const BODIES = {
  // route u d s takeover maxDevices -> { 'in_use' } | { 'too_many' } | { 'ok', replacedRouteJson or '', events, ends }
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
changed(u, t)
return { 'ok', replaced, events, ends }
`,
  // u d s -> changes
  presenceDisconnect: `
local t = now()
local u, d, s = ARGV[4], ARGV[5], ARGV[6]
local owner = redis.call('HGET', devs(u), d)
local exists = redis.call('EXISTS', dkey(u, d)) == 1
if exists and owner ~= s then return { events, ends } end
redis.call('SET', gone(s), '1', 'PX', TIMEOUT)
unsubscribe(s)
if owner == s then
  redis.call('DEL', dkey(u, d))
  redis.call('HDEL', devs(u), d)
  redis.call('ZREM', BEATS, member(u, d))
  if exists then redis.call('HSET', st(u), 'la', t) end
  changed(u, t)
end
return { events, ends }
`,
  // (route u d s)* of users of this shard -> changes
  presenceHeartbeat: `
local t = now()
local restored = {}
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
    changed(u, t)
    restored[#restored + 1] = u
  elseif redis.call('EXISTS', st(u)) == 1 then
    redis.call('HSET', st(u), 'la', t)
  end
  redis.call('PEXPIRE', watch(s), 2 * TIMEOUT)
end
return { events, ends, restored }
`,
  // limit -> changes: the shard's lapsed devices and users due offline, at most limit of each
  presenceSweep: `
local t = now()
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
  changed(u, t)
end
-- Compare-and-set: the ZREM makes whichever instance gets here first the only one to publish.
for _, u in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', t, 'LIMIT', 0, limit)) do
  redis.call('ZREM', DUE, u)
  if redis.call('HGET', st(u), 'on') == '1' and live(u) == 0 then emit(u, '0') end
end
return { events, ends }
`,
  // s u+ (s of a user of this shard, a batch of users) -> 0: the first half of a subscription
  presenceWatch: `
local s = ARGV[4]
redis.call('SADD', watch(s), unpack(ARGV, 5))
redis.call('PEXPIRE', watch(s), 2 * TIMEOUT)
return 0
`,
  // s route u* (users of this shard) -> { {on, la} }: the second half
  presenceSubscribe: `
local s, route = ARGV[4], ARGV[5]
local out = {}
for i = 6, #ARGV do
  local u = ARGV[i]
  redis.call('HSET', subk(u), s, route)
  local v = redis.call('HMGET', st(u), 'on', 'la')
  out[#out + 1] = { v[1] or '0', v[2] or '0' }
end
return out
`,
  // s* (sessions of users of this shard) -> { 1 | 0 }: which still watch (their watch key is there)
  presenceWatching: `
local out = {}
for i = 4, #ARGV do out[#out + 1] = redis.call('EXISTS', watch(ARGV[i])) end
return out
`,
  // (u s)* (users of this shard) -> 0: the sessions no longer watch the users
  presenceDropSubs: `
for i = 4, #ARGV, 2 do redis.call('HDEL', subk(ARGV[i]), ARGV[i + 1]) end
return 0
`,
  // u [watcher]: every subscription to u, or only the watcher's sessions'. The watchers' watch
  // sets may still name u: harmless, their end removes a subs entry that is not there.
  presenceUnwatch: `
local u, w = ARGV[4], ARGV[5]
if not w or w == '' then
  redis.call('DEL', subk(u))
  return 0
end
local h = redis.call('HGETALL', subk(u))
for i = 1, #h, 2 do
  if cjson.decode(h[i + 1]).userId == w then redis.call('HDEL', subk(u), h[i]) end
end
return 0
`,
  // u* -> { {on, la} }
  presenceQuery: `
local out = {}
for i = 4, #ARGV do
  local v = redis.call('HMGET', st(ARGV[i]), 'on', 'la')
  out[#out + 1] = { v[1] or '0', v[2] or '0' }
end
return out
`,
  // u* -> route JSON of every live device
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

export type ScriptName = keyof typeof BODIES;

/** The scripts as ioredis commands: two keys (the shard's beats and due), then ARGV. */
export const SCRIPTS = Object.fromEntries(Object.entries(BODIES).map(([name, body]) => [name, PRELUDE + body])) as Record<ScriptName, string>;

/** The keys that route a call to the shard whose keys start with `base`. */
export function shardKeys(base: string): [string, string] {
  return [`${base}beats`, `${base}due`];
}
