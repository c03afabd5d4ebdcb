import type { Redis } from "ioredis";
import { redisClient, throttledReporter, type Reporter } from "../redis/client.js";
import { HistoryDirection, type HistoryPage, type HistoryRequest, Message } from "../../gen/chat/v1/client.js";

/**
 * The last messages of each conversation in Redis, for the pages clients ask
 * for most: the newest one on opening a conversation, and the ones just above
 * it. Per conversation, a sorted set (score = seq) holds one contiguous run of
 * seqs [lo, hi] and a hash records lo and hi. Seqs are gapless, so a page is
 * served from Redis only when its whole range lies inside the run and the run
 * reaches the conversation's last seq; anything else reads the store.
 *
 * Appends extend the run only if they continue it (a lost update or two
 * store instances racing leaves a gap: the run is dropped and rebuilt from the
 * next newest-page read). Redis failures never fail a read or a write: the
 * store is the truth and the cache is skipped.
 */
export class RecentMessages {
  private readonly redis: Redis;
  private readonly report: Reporter;

  constructor(
    url: string,
    private readonly prefix: string,
    /** How many messages per conversation (HISTORY_CACHE_SIZE). */
    private readonly size: number,
    private readonly ttlSeconds: number,
    onError: (err: unknown) => void = () => {},
  ) {
    this.report = throttledReporter(onError);
    this.redis = redisClient(url, { commandTimeoutMs: 1_000, report: this.report });
    this.redis.defineCommand("recentAppend", { numberOfKeys: 2, lua: APPEND });
    this.redis.defineCommand("recentFill", { numberOfKeys: 2, lua: FILL });
  }

  /** Messages just stored for one conversation, in seq order. */
  async appended(conversationId: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    const args = messages.flatMap((m) => [String(m.seq), Buffer.from(Message.encode(m).finish())]);
    await this.run("recentAppend", conversationId, args);
  }

  /** A page from the cache, or undefined when the cache cannot answer it exactly. */
  async page(req: HistoryRequest, lastSeq: number, limit: number): Promise<HistoryPage | undefined> {
    const forward = req.direction === HistoryDirection.HISTORY_DIRECTION_FORWARD;
    let lo: number;
    let hi: number;
    let hasMore: boolean;
    if (forward) {
      lo = req.fromSeq + 1;
      hi = Math.min(req.fromSeq + limit, lastSeq);
      hasMore = req.fromSeq + limit < lastSeq;
    } else {
      hi = req.fromSeq === 0 ? lastSeq : Math.min(req.fromSeq - 1, lastSeq);
      lo = Math.max(1, hi - limit + 1);
      hasMore = lo > 1;
    }
    if (hi < lo) return { conversationId: req.conversationId, messages: [], hasMore: false, nextFromSeq: req.fromSeq };
    try {
      const [[, bounds], [, raw]] = (await this.redis.multi()
        .hmget(this.boundsKey(req.conversationId), "lo", "hi")
        .zrangebyscoreBuffer(this.runKey(req.conversationId), lo, hi)
        .exec()) as [[unknown, Array<string | null>], [unknown, Buffer[]]];
      const runLo = Number(bounds[0]);
      const runHi = Number(bounds[1]);
      if (!bounds[0] || runHi < lastSeq || runLo > lo || runHi < hi || raw.length !== hi - lo + 1) return undefined;
      const messages = raw.map((b) => Message.decode(b));
      if (!forward) messages.reverse();
      return { conversationId: req.conversationId, messages, hasMore, nextFromSeq: messages[messages.length - 1]!.seq };
    } catch (err) {
      this.report(err);
      return undefined;
    }
  }

  /** The newest page read from the store (newest first) seeds an empty or older run. */
  async fill(conversationId: string, newestFirst: Message[]): Promise<void> {
    if (newestFirst.length === 0) return;
    const ordered = [...newestFirst].reverse().slice(-this.size);
    await this.run("recentFill", conversationId, ordered.flatMap((m) => [String(m.seq), Buffer.from(Message.encode(m).finish())]));
  }

  /**
   * Drops the conversation's run (a message in it was edited or deleted). Unlike the
   * other writes this one fails loudly: a delete for everyone must not leave the text
   * here, so the caller's request fails (retryable) rather than report success.
   */
  async forget(conversationId: string): Promise<void> {
    await this.redis.del(this.runKey(conversationId), this.boundsKey(conversationId));
  }

  close(): void {
    this.redis.disconnect();
  }

  private async run(script: "recentAppend" | "recentFill", conversationId: string, args: Array<string | Buffer>): Promise<void> {
    try {
      const fn = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[script]!;
      await fn.call(this.redis, this.runKey(conversationId), this.boundsKey(conversationId), this.size, this.ttlSeconds, ...args);
    } catch (err) {
      this.report(err);
    }
  }

  private runKey(id: string): string {
    return `${this.prefix}recent:{${id}}:msgs`;
  }

  private boundsKey(id: string): string {
    return `${this.prefix}recent:{${id}}:run`;
  }
}

// KEYS[1] run (zset), KEYS[2] bounds (hash); ARGV: size, ttl, then seq, encoded message pairs in seq order.
const TRIM = `
local size = tonumber(ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > size then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - size - 1) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then redis.call('HSET', KEYS[2], 'lo', first[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
`;

const APPEND = `
local first = tonumber(ARGV[3])
local hi = tonumber(redis.call('HGET', KEYS[2], 'hi'))
if hi and hi >= first then return 0 end
if hi and hi ~= first - 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
if not hi then return 0 end
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'hi', ARGV[#ARGV - 1])
${TRIM}
return 1
`;

const FILL = `
local pageHi = tonumber(ARGV[#ARGV - 1])
local hi = tonumber(redis.call('HGET', KEYS[2], 'hi'))
if hi and hi >= pageHi then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'lo', ARGV[3], 'hi', ARGV[#ARGV - 1])
${TRIM}
return 1
`;
