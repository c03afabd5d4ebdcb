import { RouteVersions } from "../routes/route-versions.js";
import cassandra from "cassandra-driver";
import type { AppendGroup, AppendGroupResult, AppendedMessage, ChangeMessageRequest, Session, User, UserEvent } from "../../gen/chat/internal/v1/store.js";
import type { RotateRequest } from "./sessions.js";
import type { PrivacySettings } from "./privacy.js";
import type { BlockedUser, BlockPair } from "./blocks.js";
import {
  type Conversation,
  ErrorCode,
  Event,
  HistoryDirection,
  type HistoryPage,
  type HistoryRequest,
  MembershipAction,
  type Message,
} from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { infraErrorToChatError } from "../errors/infra.js";
import { ITEM_OVERHEAD_BYTES, PAGE_MAX_BYTES, textBytes } from "../grpc/message-size.js";
import { CassandraRequestCounter } from "./cassandra-requests.js";
import { type Head, type LeaderFailure, LogLeader, type Staged } from "./cassandra-leader.js";
import { claimWriterDc } from "./cassandra-writer-dc.js";
import { checkKeyspace, migrateCassandra } from "./schema-cassandra.js";
import { num, type SqlClient, type SqlExecutor } from "./sql.js";
import type { DirectoryReads } from "./directory-reads.js";
import { type LogWrite, SqlStore } from "./store-sql.js";
import { fillEditedTexts, liveEvents, planMessageChange } from "./store-rules.js";
import { MemberSets } from "./member-sets.js";
import { fitBytes, historyLimit, logContinuity, type LogPage, type PointerMoveResult, type PointerUpdate, type Store } from "./store.js";

/*
 * The message store of the production profile: PostgreSQL keeps the directory
 * (users, conversations, membership, mute: small, relational, transactional),
 * Cassandra keeps what grows with traffic (messages, dedupe index, per-user sync
 * logs, read pointers).
 *
 * One writer, no consensus per message (docs/cassandra-log.md). The store instance that
 * holds the keyspace's log (cassandra-leader.ts: a fence moved by one lightweight
 * transaction when it starts, its epoch on every write's timestamp) numbers everything in
 * memory: a conversation's seqs (checked against the chat owner's base_seq), each user's
 * log positions, the pointers. Every row is a plain LOCAL_QUORUM write; an operation stages
 * its rows and the heads they move, and the leader's next tick commits whatever was staged
 * together (rows, then the tick's intent, then a read of the fence) before any of it is
 * answered. Readers never go past a committed head, so a tick in flight, or rows a deposed
 * leader wrote, are never read. Another instance started on the keyspace takes the log;
 * this one is then deposed (onDeposed) and refuses every call on it with UNAVAILABLE.
 *
 * Membership events come from the PostgreSQL directory transaction: they are recorded in
 * an outbox table in the same transaction, logged by a tick (which records where, in
 * log_outbox_done) and deleted; a new leader logs what a crash left, for the recipients
 * whose entry no tick committed.
 */

const { consistencies } = cassandra.types;

/**
 * Messages are partitioned by (conversation_id, floor(seq / MESSAGES_PER_BUCKET)).
 * A seq-range bucket rather than a time bucket: it bounds every partition to a
 * fixed number of rows whatever the conversation's traffic (a busy group would
 * overflow a day bucket, a quiet one would scatter over thousands of near-empty
 * ones), and history, log resolution and dedupe lookups know the partition of a
 * seq without any index, scanning contiguous buckets with no holes.
 *
 * Sized by bytes, not rows: a partition must stay under Cassandra's ~100 MB guidance
 * (PARTITION_BYTES_MAX) even when every message is the largest legal one (100,000 code
 * points of 4 UTF-8 bytes: 400 KB). 200 such rows are 80 MB; at a typical ~200 bytes a
 * bucket is ~40 KB, and a history page (50, at most 200) still touches one or two buckets.
 * It was 2,000 (800 MB worst case). Fixed per keyspace at creation (store_settings).
 */
export const MESSAGES_PER_BUCKET = 200;
/** The largest message body in bytes at the default MAX_TEXT_LENGTH (100,000 code points). */
export const MAX_MESSAGE_BYTES = 4 * 100_000;
/** Cassandra's guidance for a partition's size. */
export const PARTITION_BYTES_MAX = 100 * 1024 * 1024;
/** Sync-log partitions: (user_id, floor(pos / LOG_ENTRIES_PER_BUCKET)). */
export const LOG_ENTRIES_PER_BUCKET = 10_000;
/** Log entries of membership events use seq = -outbox id in their idempotency key. */
const OUTBOX_TABLE = "cassandra_log_outbox";

export interface CassandraStoreOptions {
  keyspace: string;
  /** Replication when this store creates the keyspace: a SimpleStrategy factor or `dc1:3,dc2:3` (schema-cassandra.ts replicationOf). */
  replication?: string;
  /**
   * Bucket sizes; fixed when the keyspace is created (store_settings). Unset: the keyspace's own
   * (or the defaults, for a new one), so a keyspace made under older defaults opens as it is;
   * set and different from the keyspace's: open fails.
   */
  messagesPerBucket?: number;
  logEntriesPerBucket?: number;
  /** CASSANDRA_LOCAL_DC: this instance's data centre, which must be the keyspace's writer (cassandra-writer-dc.ts). */
  localDc: string;
  /** CASSANDRA_TAKE_OVER_WRITES: make the local DC the writer, the one before being down. */
  takeOverWrites?: boolean;
  /** Told once if another instance takes the message log from this one (it then refuses every call on it). */
  onDeposed?: (epoch: number) => void;
  /**
   * SYNC_LOG_RETENTION_S: sync-log entries are written with this TTL and expire by themselves
   * (docs/sync-log-trim.md); 0 keeps them for ever.
   */
  logRetentionSeconds?: number;
  /** Where the conversation list runs (SqlStore.open; the primary by default). */
  directoryReads?: DirectoryReads;
  /** Pointers the leader keeps in memory (MAX_POINTERS unless set; tests set a tiny bound to make it evict). */
  maxPointers?: number;
  /**
   * Until when (performance.now()) no other instance can have been elected to lead the log: the
   * election's Leadership.heldUntil. Without it the leader reads its fence every tick.
   */
  heldUntil?: () => number;
}

/** A Cassandra client with the store's defaults: LOCAL_QUORUM, LOCAL_SERIAL, prepared statements. */
export function createCassandraClient(contactPoints: string[], localDataCenter: string): cassandra.Client {
  return new cassandra.Client({
    contactPoints,
    localDataCenter,
    queryOptions: { consistency: consistencies.localQuorum, serialConsistency: consistencies.localSerial, prepare: true },
    requestTracker: new CassandraRequestCounter(),
    socketOptions: { connectTimeout: 3_000, readTimeout: 12_000 },
  });
}

interface OutboxRow {
  id: number;
  conversationId: string;
  userIds: string[];
  event: Event;
}

type Row = cassandra.types.Row;

/** Log rows whose messages are read per round while a ReadLog page is filled (bounds what one round holds). */
const RESOLVE_CHUNK_MIN = 16;
const RESOLVE_CHUNK_MAX = 256;
/** History rows read per query: a default page (50) is one query, a page of large messages stops early. */
const HISTORY_CHUNK = 64;

function rowToMessage(r: Row): Message {
  return {
    conversationId: r["conversation_id"] as string,
    seq: num(r["seq"]),
    senderId: r["sender_id"] as string,
    senderDeviceId: r["sender_device_id"] as string,
    clientMsgId: r["client_msg_id"] as string,
    text: r["body"] as string,
    sentAtMs: num(r["sent_at"]),
    editedAtMs: num(r["edited_at"] ?? 0),
    deleted: num(r["deleted_at"] ?? 0) > 0,
    replyToSeq: num(r["reply_to_seq"] ?? 0) || undefined,
  };
}

export class CassandraStore implements Store {
  private readonly M: number;
  private readonly L: number;
  /** Seconds each sync-log entry lives (0: for ever); the trim of docs/sync-log-trim.md. */
  private readonly logTtl: number;
  private readonly cql: ReturnType<typeof statements>;
  /** The log's leader (cassandra-leader.ts): this instance numbers every conversation and sync log while it holds it. */
  private leader: LogLeader | undefined;
  /** Another instance took the log: this one refuses every call on it, for good. */
  private deposed = false;
  private closing = false;
  /** Per (conversation, user), the pointers as this leader last wrote or read them (only this leader writes them). */
  private pointers = new Map<string, Pointer>();
  private readonly pointerLoads = new Map<string, Promise<Pointer>>();
  /** Who is in each conversation, for the checks of acknowledgements and history (member-sets.ts). */
  private readonly memberSets = new MemberSets((conversationId) => this.dir.memberIds(conversationId));
  /** Edits and deletions of one message, one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Waits between attempts to take the log back, cut short by close(). */
  private readonly pauses = new Set<() => void>();
  /**
   * Route versions (route-versions.ts), new with each leadership: raises that reached another
   * leader meanwhile are unknown here, and a new epoch makes chat fetch every route again.
   */
  private versions = new RouteVersions();
  get routeVersions(): RouteVersions {
    return this.versions;
  }

  private constructor(
    private readonly dir: SqlStore,
    private readonly db: SqlClient,
    private readonly client: cassandra.Client,
    private readonly keyspace: string,
    messagesPerBucket: number,
    logEntriesPerBucket: number,
    private readonly options: CassandraStoreOptions,
  ) {
    this.M = messagesPerBucket;
    this.L = logEntriesPerBucket;
    this.logTtl = options.logRetentionSeconds ?? 0;
    this.cql = statements(keyspace);
  }

  /** Migrates both schemas, then drains membership events a crash left in the outbox. */
  static async open(db: SqlClient, client: cassandra.Client, options: CassandraStoreOptions): Promise<CassandraStore> {
    return guard(async () => {
      const ks = checkKeyspace(options.keyspace);
      // The directory's membership events go to the outbox, then to this store's log (recordMembership).
      let store: CassandraStore | undefined;
      const dir = await SqlStore.open(db, options.directoryReads, { record: (tx, writes) => store!.recordMembership(tx, writes) });
      await db.query(`CREATE TABLE IF NOT EXISTS ${OUTBOX_TABLE} (
        id bigserial PRIMARY KEY, conversation_id text NOT NULL, user_ids text[] NOT NULL, event bytea NOT NULL, created_at bigint NOT NULL)`);
      await client.connect();
      await migrateCassandra(client, ks, options.replication ?? "1");
      await claimWriterDc(client, ks, options.localDc, options.takeOverWrites ?? false);
      const setting = async (name: string, wanted: number | undefined, fallback: number): Promise<number> => {
        const opts = { prepare: true, consistency: consistencies.localQuorum, serialConsistency: consistencies.localSerial };
        await client.execute(`INSERT INTO ${ks}.store_settings (name, value) VALUES (?, ?) IF NOT EXISTS`, [name, wanted ?? fallback], opts);
        const r = await client.execute(`SELECT value FROM ${ks}.store_settings WHERE name = ?`, [name], { ...opts, consistency: consistencies.localSerial });
        const have = num(r.first()?.["value"]);
        if (wanted !== undefined && have !== wanted) throw new Error(`keyspace ${ks} was created with ${name}=${have}, this instance wants ${wanted}`);
        return have;
      };
      const m = await setting("messages_per_bucket", options.messagesPerBucket, MESSAGES_PER_BUCKET);
      const l = await setting("log_entries_per_bucket", options.logEntriesPerBucket, LOG_ENTRIES_PER_BUCKET);
      store = new CassandraStore(dir, db, client, ks, m, l, options);
      // Takes the log (fence, earlier epochs closed), then drains membership events a crash left.
      await store.takeOver();
      return store;
    });
  }

  // ---- directory (PostgreSQL) ----

  createUser(user: User): Promise<void> {
    return guard(() => this.dir.createUser(user));
  }

  getUserByName(username: string): Promise<User | null> {
    return guard(() => this.dir.getUserByName(username));
  }

  getUsers(ids: string[]): Promise<User[]> {
    return guard(() => this.dir.getUsers(ids));
  }

  createSession(session: Session, refreshHash: Uint8Array, maxLive?: number): Promise<string[]> { return guard(() => this.dir.createSession(session, refreshHash, maxLive)); }
  rotateSession(req: RotateRequest) { return guard(() => this.dir.rotateSession(req)); }
  endSession(userId: string, sessionId: string, nowMs: number): Promise<boolean> { return guard(() => this.dir.endSession(userId, sessionId, nowMs)); }
  setPassword(userId: string, passwordHash: string, keepSessionId: string, nowMs: number): Promise<string[]> { return guard(() => this.dir.setPassword(userId, passwordHash, keepSessionId, nowMs)); }
  checkSessions(sessionIds: string[], nowMs: number): Promise<boolean[]> { return guard(() => this.dir.checkSessions(sessionIds, nowMs)); }
  privacySettings(userIds: string[]): Promise<PrivacySettings[]> { return guard(() => this.dir.privacySettings(userIds)); }
  setPrivacySettings(userId: string, change: PrivacySettings): Promise<PrivacySettings> { return guard(() => this.dir.setPrivacySettings(userId, change)); }
  presenceHidden(userIds: string[]): Promise<string[]> { return guard(() => this.dir.presenceHidden(userIds)); }
  setBlocked(userId: string, blockedId: string, blocked: boolean, atMs: number) { return guard(() => this.dir.setBlocked(userId, blockedId, blocked, atMs)); }
  blocks(userId: string): Promise<{ blocked: BlockedUser[]; blockedBy: string[] }> { return guard(() => this.dir.blocks(userId)); }
  blockPairs(userIds: string[]): Promise<BlockPair[]> { return guard(() => this.dir.blockPairs(userIds)); }
  deletedAmong(userIds: string[]): Promise<string[]> { return guard(() => this.dir.deletedAmong(userIds)); }
  deleteAccount(userId: string, nowMs: number) { return guard(() => this.dir.deleteAccount(userId, nowMs)); }

  createConversation(conversation: Conversation, createdBy: string, maxMembers: number) {
    return guard(async () => {
      const r = await this.dir.createConversation(conversation, createdBy, maxMembers);
      // Already there (a retried create): its snapshot carries the log's last seq and pointers.
      if (!r.created) await this.overlay(r.conversation);
      return r;
    });
  }

  getConversation(id: string) {
    return guard(async () => {
      const found = await this.dir.getConversation(id);
      if (found) await this.overlay(found.conversation);
      return found;
    });
  }

  changeMembership(req: { conversationId: string; actorId: string; subjectId: string; action: MembershipAction; maxMembers: number }) {
    return guard(() => this.dir.changeMembership(req));
  }

  /**
   * The directory's membership log (SqlStore's MembershipLog). Inside its transaction: a change's
   * snapshot gets the log's last seq and pointers, and the event and its recipients go to the
   * outbox. After the commit: the member sets learn it, a member who left or was removed loses
   * their pointers (one who comes back starts afresh, as a new members row does in SQL), and the
   * event is logged in one tick, its outbox row then deleted. A crash between commit and tick
   * leaves the row for the drain at the next start (drainOutbox).
   */
  private async recordMembership(tx: SqlExecutor, writes: LogWrite[]): Promise<() => Promise<UserEvent[]>> {
    const event = writes[0]?.event;
    const change = event?.kind?.$case === "membership" ? event.kind.value : undefined;
    if (change?.conversation && change.action !== MembershipAction.MEMBERSHIP_ACTION_CREATED) await this.overlay(change.conversation);
    const row = await this.recordOutbox(tx, writes);
    return async () => {
      if (change) this.memberSets.changed(change.conversationId);
      if (change && (change.action === MembershipAction.MEMBERSHIP_ACTION_REMOVED || change.action === MembershipAction.MEMBERSHIP_ACTION_LEFT)) {
        await this.forgetPointers(change.conversationId, change.subjectId);
      }
      return row ? this.flushOutbox(row) : [];
    };
  }

  private async forgetPointers(conversationId: string, userId: string): Promise<void> {
    const tick = new TickWrites();
    const fresh: Pointer = { delivered: 0, read: 0, holds: 0 };
    tick.hold(fresh);
    tick.stage(this.cql.deletePointers, [conversationId, userId]);
    this.pointers.set(pointerKey(conversationId, userId), fresh);
    try {
      await this.log().submit(tick.writes, tick.heads);
    } finally {
      tick.release();
    }
  }

  listConversations(userId: string): Promise<Conversation[]> {
    return guard(async () => {
      const list = await this.dir.listConversations(userId);
      await Promise.all(list.map(async (c) => {
        await this.overlay(c);
        c.readSeq = c.members.find((m) => m.userId === userId)?.readSeq ?? 0;
        // A message deleted for everyone is no longer there to read; with nothing past the
        // pointer there is nothing to count (most of a list, on most connects).
        if (c.lastSeq <= c.readSeq) {
          c.unread = 0;
          return;
        }
        const deleted = await this.client.execute(this.cql.deletedAfter, [c.id, c.readSeq], { isIdempotent: true });
        c.unread = Math.max(0, c.lastSeq - c.readSeq - num(deleted.first()?.["n"]));
      }));
      return list;
    });
  }

  groupsCreatedSince(userId: string, sinceMs: number): Promise<number> {
    return guard(() => this.dir.groupsCreatedSince(userId, sinceMs));
  }

  contactIds(userId: string): Promise<string[]> {
    return guard(() => this.dir.contactIds(userId));
  }

  isMember(conversationId: string, userId: string): Promise<boolean> {
    return guard(() => this.memberSets.has(conversationId, userId));
  }

  setMuted(conversationId: string, userId: string, muted: boolean): Promise<void> {
    return guard(() => this.dir.setMuted(conversationId, userId, muted));
  }

  // ---- messages (Cassandra) ----

  append(groups: AppendGroup[]): Promise<AppendGroupResult[]> {
    return guard(async () => {
      const log = this.log();
      const results: AppendGroupResult[] = new Array(groups.length);
      const tick = new TickWrites();
      // Groups of one conversation in order (the second sees the first's seqs), conversations in parallel;
      // everything staged goes in one tick.
      const byConv = new Map<string, number[]>();
      groups.forEach((g, i) => byConv.set(g.conversationId, [...(byConv.get(g.conversationId) ?? []), i]));
      try {
        const done = await Promise.allSettled([...byConv.values()].map(async (idxs) => {
          for (const i of idxs) results[i] = await this.appendGroup(log, groups[i]!, tick);
        }));
        // What the groups that got through numbered is committed even if another failed: seqs and
        // positions handed out are always written (a gap would otherwise open in the logs).
        if (!tick.empty) await log.submit(tick.writes, tick.heads);
        const failed = done.find((d) => d.status === "rejected");
        if (failed) throw failed.reason;
        return results;
      } finally {
        tick.release();
      }
    });
  }

  lastSeq(conversationId: string): Promise<number> {
    return guard(async () => {
      // Settled: a tick in flight for the conversation is waited for (its owner asks this after a conflict).
      const head = await this.log().settled(convKey(conversationId));
      if (head.assigned === 0 && !(await this.dir.conversationExists(conversationId))) throw ChatError.notFound("no such conversation");
      return head.committed;
    });
  }

  readLog(userId: string, afterPos: number, limit: number, maxBytes = PAGE_MAX_BYTES): Promise<LogPage> {
    return guard(async () => {
      // Only what a tick committed: rows past the head are a tick in flight or a deposed leader's.
      const head = (await this.log().head(logKey(userId))).committed;
      const rows: Row[] = [];
      let p = afterPos + 1;
      while (rows.length < limit && p <= head) {
        const b = Math.floor(p / this.L);
        const r = await this.client.execute(this.cql.readLog, [userId, b, p, limit - rows.length], { isIdempotent: true });
        rows.push(...r.rows.filter((row) => num(row["pos"]) <= head));
        p = (b + 1) * this.L;
      }
      // Entries expire (their TTL, docs/sync-log-trim.md): a committed position missing from the rows was trimmed.
      const continuous = logContinuity(afterPos, head, rows.map((row) => num(row["pos"])));
      if ("trimmedTo" in continuous) return { events: [], head, more: true, trimmedTo: continuous.trimmedTo };
      const holeCut = continuous.take < rows.length;
      rows.length = continuous.take;
      // Log entries are small references; the bodies they point at are read a
      // chunk at a time in log order and the page stops at the byte budget, so
      // a backlog of large messages never makes one huge reply (nor one huge read).
      const events: Event[] = [];
      let bytes = 0;
      let cut = false;
      for (let i = 0; i < rows.length && !cut; ) {
        // A few rows first, then as many as the budget left would take at the
        // sizes seen so far: small entries resolve in a few large rounds, large
        // ones a few at a time (what one round reads stays near the budget).
        const take = events.length === 0 ? RESOLVE_CHUNK_MIN
          : Math.min(RESOLVE_CHUNK_MAX, Math.max(RESOLVE_CHUNK_MIN, Math.floor((maxBytes - bytes) / (bytes / events.length))));
        const chunk = rows.slice(i, i + take);
        i += chunk.length;
        const messages = await this.messagesOf(chunk);
        // Edit events get their text (the message's now) before they are measured: it counts in the budget.
        const decoded = chunk.map((r) => (hasEvent(r) ? Event.decode(r["event"] as Buffer) : undefined));
        await fillEditedTexts(decoded.filter((e): e is Event => e !== undefined), (c, seqs) => this.texts(c, seqs));
        for (const [j, r] of chunk.entries()) {
          const pos = num(r["pos"]);
          const ev = decoded[j];
          const m = ev ? undefined : messages.get(`${r["conversation_id"]}\u0000${num(r["seq"])}`);
          const size = (ev ? (r["event"] as Buffer).length + (ev.kind?.$case === "edited" ? textBytes(ev.kind.value.text) : 0) : textBytes(m?.text ?? "")) + ITEM_OVERHEAD_BYTES;
          // The same rule as fitBytes: always the first event, then only what fits.
          if (events.length > 0 && bytes + size > maxBytes) { cut = true; break; }
          bytes += size;
          events.push(ev ? { ...ev, pos } : { pos, atMs: num(r["at"]), kind: m ? { $case: "message", value: m } : undefined });
        }
      }
      // Unset rather than false at the end of the log: a page there reads as before.
      return { events, head, more: cut || holeCut || rows.length === limit || undefined };
    });
  }

  /** The messages that log rows refer to (rows carrying a whole event need none), one query per (conversation, bucket). */
  private async messagesOf(rows: Row[]): Promise<Map<string, Message>> {
    const want = new Map<string, { conv: string; bucket: number; seqs: number[] }>();
    for (const r of rows) {
      if (hasEvent(r)) continue;
      const conv = r["conversation_id"] as string;
      const seq = num(r["seq"]);
      const b = Math.floor(seq / this.M);
      const k = `${conv}\u0000${b}`;
      const w = want.get(k) ?? { conv, bucket: b, seqs: [] };
      w.seqs.push(seq);
      want.set(k, w);
    }
    const messages = new Map<string, Message>();
    await Promise.all([...want.values()].map(async (w) => {
      // A run of consecutive seqs (a catch-up's usual case: one conversation's messages in a row) is
      // one slice of the partition; scattered ones are point reads.
      const first = Math.min(...w.seqs);
      const last = Math.max(...w.seqs);
      const r = last - first + 1 === new Set(w.seqs).size
        ? await this.client.execute(this.cql.messagesBetween, [w.conv, w.bucket, first, last], { isIdempotent: true })
        : await this.client.execute(this.cql.messagesIn, [w.conv, w.bucket, w.seqs], { isIdempotent: true });
      for (const m of r.rows) messages.set(`${m["conversation_id"]}\u0000${num(m["seq"])}`, rowToMessage(m));
    }));
    return messages;
  }

  /** The current text of some messages of one conversation, one query per bucket. */
  private async texts(conv: string, seqs: number[]): Promise<Map<number, string>> {
    const byBucket = new Map<number, number[]>();
    for (const seq of seqs) byBucket.set(Math.floor(seq / this.M), [...(byBucket.get(Math.floor(seq / this.M)) ?? []), seq]);
    const texts = new Map<number, string>();
    await Promise.all([...byBucket].map(async ([b, list]) => {
      const r = await this.client.execute(this.cql.messagesIn, [conv, b, list], { isIdempotent: true });
      for (const m of r.rows) texts.set(num(m["seq"]), m["body"] as string);
    }));
    return texts;
  }

  /**
   * An edit or deletion: one at a time per message (the leader's lock), so the edit cap and
   * "deleted" hold without a compare-and-set; the message row's change and the events in
   * the concerned logs commit in one tick. It changes cells of a committed row, so the tick
   * also carries the writes that put them back as they are now, which a next leader applies
   * if the tick never commits (docs/cassandra-log.md, "Changes in place").
   */
  changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]> {
    return guard(async () => {
      const log = this.log();
      return this.locked(`${req.conversationId}\u0000${req.seq}`, async () => {
        const conv = await this.dir.conversationRow(req.conversationId);
        const conversation = conv && { kind: conv.kind, createdBy: conv.createdBy };
        const committed = (await log.head(convKey(req.conversationId))).committed;
        const b = Math.floor(req.seq / this.M);
        const row = req.seq <= committed ? (await this.client.execute(this.cql.message, [req.conversationId, b, req.seq], { isIdempotent: true })).first() : undefined;
        const state = row ? { senderId: row["sender_id"] as string, sentAtMs: num(row["sent_at"]), editCount: num(row["edit_count"]), deleted: num(row["deleted_at"]) > 0 } : undefined;
        const plan = planMessageChange(req, state, conversation, conv?.members ?? []);
        const tick = new TickWrites();
        const nullable = (v: unknown) => (v == null ? null : num(v));
        if (plan.editCount !== undefined) {
          tick.stage(this.cql.editMessage, [req.text, req.atMs, plan.editCount, req.conversationId, b, req.seq]);
          tick.restore(this.cql.editMessage, [row!["body"], nullable(row!["edited_at"]), nullable(row!["edit_count"]), req.conversationId, b, req.seq]);
        } else if (plan.deleteForEveryone) {
          tick.stage(this.cql.deleteMessage, [req.atMs, req.conversationId, b, req.seq]);
          tick.stage(this.cql.insertDeleted, [req.conversationId, req.seq]);
          tick.restore(this.cql.undeleteMessage, [row!["body"], nullable(row!["deleted_at"]), req.conversationId, b, req.seq]);
          tick.restore(this.cql.removeDeleted, [req.conversationId, req.seq]);
        } else {
          tick.stage(this.cql.insertHidden, [req.actorId, req.conversationId, req.seq]);
          const hidden = (await this.client.execute(this.cql.hiddenAt, [req.actorId, req.conversationId, req.seq], { isIdempotent: true })).first();
          if (!hidden) tick.restore(this.cql.unhide, [req.actorId, req.conversationId, req.seq]);
        }
        const at = req.atMs || Date.now();
        const logged = await this.logEvents(log, tick, plan.recipients, req.conversationId, { ...plan.stored, atMs: at });
        await log.submit(tick.writes, tick.heads, tick.restores);
        return liveEvents(logged, plan.live);
      });
    });
  }

  /** From the dedupe index (one partition per conversation and sender), less the conversation's tombstones and what no tick committed. */
  sentMessages(conversationId: string, senderId: string): Promise<number[]> {
    return guard(async () => {
      const committed = (await this.log().head(convKey(conversationId))).committed;
      const [sent, deleted] = await Promise.all([
        this.client.execute(this.cql.sentBy, [conversationId, senderId], { isIdempotent: true, fetchSize: 100_000 }),
        this.client.execute(this.cql.deletedIn, [conversationId], { isIdempotent: true, fetchSize: 100_000 }),
      ]);
      const gone = new Set(deleted.rows.map((r) => num(r["seq"])));
      const seqs = sent.rows.map((r) => num(r["seq"])).filter((seq) => seq <= committed && !gone.has(seq));
      // An index row a deposed leader wrote may name a seq that is someone else's message now.
      const byBucket = new Map<number, number[]>();
      for (const seq of seqs) byBucket.set(Math.floor(seq / this.M), [...(byBucket.get(Math.floor(seq / this.M)) ?? []), seq]);
      const mine: number[] = [];
      await Promise.all([...byBucket].map(async ([b, list]) => {
        const r = await this.client.execute(this.cql.messagesIn, [conversationId, b, list], { isIdempotent: true });
        for (const m of r.rows) if (m["sender_id"] === senderId) mine.push(num(m["seq"]));
      }));
      return mine.sort((a, b) => a - b);
    });
  }

  hiddenSeqs(userId: string, conversationId: string): Promise<number[]> {
    return guard(async () => (await this.client.execute(this.cql.hiddenOf, [userId, conversationId], { isIdempotent: true })).rows.map((r) => num(r["seq"])));
  }

  /** Each user's committed log head: from the leader's memory, or one read of its mark. */
  logHeads(userIds: string[]): Promise<number[]> {
    return guard(async () => {
      const log = this.log();
      return Promise.all(userIds.map(async (u) => (await log.head(logKey(u))).committed));
    });
  }

  history(userId: string, req: HistoryRequest, maxBytes = PAGE_MAX_BYTES): Promise<HistoryPage> {
    return guard(async () => {
      if (!(await this.memberSets.has(req.conversationId, userId))) throw ChatError.denied();
      const last = (await this.log().head(convKey(req.conversationId))).committed;
      // What the user deleted for themselves is not in their pages.
      const hidden = new Set(await this.hiddenSeqs(userId, req.conversationId));
      const limit = historyLimit(req.limit);
      const forward = req.direction === HistoryDirection.HISTORY_DIRECTION_FORWARD;
      const from = req.fromSeq;
      const rows: Message[] = [];
      // Read at most HISTORY_CHUNK rows a query and stop once the byte budget is
      // spent, so a page of large messages is never read (nor sent) whole.
      let bytes = 0;
      const want = () => Math.min(limit + 1 - rows.length, HISTORY_CHUNK);
      const full = () => rows.length > limit || bytes > maxBytes;
      const take = (read: Message[]) => {
        const found = read.filter((m) => m.seq <= last && !hidden.has(m.seq));
        rows.push(...found);
        for (const m of found) bytes += textBytes(m.text) + ITEM_OVERHEAD_BYTES;
      };
      let s: number;
      if (forward) {
        for (s = from + 1; !full() && s <= last; ) {
          const b = Math.floor(s / this.M);
          const asked = want();
          const found = (await this.client.execute(this.cql.historyForward, [req.conversationId, b, s, asked], { isIdempotent: true })).rows.map(rowToMessage);
          take(found);
          // A full chunk may have more in this bucket: go on after its last row.
          s = found.length === asked ? found[found.length - 1]!.seq + 1 : (b + 1) * this.M;
        }
      } else {
        for (s = from === 0 ? last : Math.min(from - 1, last); !full() && s >= 1; ) {
          const b = Math.floor(s / this.M);
          const asked = want();
          const found = (await this.client.execute(this.cql.historyBackward, [req.conversationId, b, s, asked], { isIdempotent: true })).rows.map(rowToMessage);
          take(found);
          s = found.length === asked ? found[found.length - 1]!.seq - 1 : b * this.M - 1;
        }
      }
      const count = fitBytes(rows.slice(0, limit).map((m) => textBytes(m.text) + ITEM_OVERHEAD_BYTES), maxBytes);
      // Reading stopped at the budget before the range ended: messages may follow even when all read ones fit.
      const rangeLeft = forward ? s <= last : s >= 1;
      const hasMore = rows.length > count || rangeLeft;
      const messages = rows.slice(0, count);
      const lastMsg = messages[messages.length - 1];
      return { conversationId: req.conversationId, messages, hasMore, nextFromSeq: lastMsg ? lastMsg.seq : from };
    });
  }

  updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number) {
    return guard(async () => {
      const [r] = await this.movePointers([{ conversationId, userId, deliveredSeq, readSeq }]);
      if (r!.error !== undefined) throw new ChatError(r!.error, r!.error === ErrorCode.ERROR_CODE_PERMISSION_DENIED ? "not a member of this conversation" : "pointer move refused");
      return r!.pointers;
    });
  }

  /** Many pointer moves in one tick, each answered on its own: a refused one (a non-member's) fails no other. */
  updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    return guard(() => this.movePointers(updates));
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const wake of this.pauses) wake();
    this.pauses.clear();
    this.leader?.stop();
    await Promise.allSettled([this.client.shutdown(), this.dir.close()]);
  }

  // ---- internals ----

  /** The log's leader, or UNAVAILABLE (retryable) while it is being taken back or after this instance was deposed. */
  private log(): LogLeader {
    const l = this.leader;
    if (!l || l.failed) throw ChatError.unavailable(this.deposed ? "this message store instance no longer holds the log" : "the message log is being recovered");
    return l;
  }

  /** Takes the log (from `from`: back, after an error); answers the epoch that holds it instead, if another does. */
  private async takeOver(from?: number): Promise<number | undefined> {
    const taken = await LogLeader.takeOver(this.client, this.keyspace, {
      from,
      legacyHead: (key) => this.legacyHead(key),
      onFailed: (f) => this.leaderFailed(leader, f),
      heldUntil: this.options.heldUntil,
    });
    if ("takenBy" in taken) return taken.takenBy;
    const leader = taken;
    if (this.closing) {
      leader.stop();
      return undefined;
    }
    this.pointers = new Map();
    this.versions = new RouteVersions();
    this.leader = leader;
    await this.drainOutbox();
    return undefined;
  }

  /**
   * A tick failed. Deposed (another instance moved the fence): this one stops serving the log
   * for good and says so. Any other failure (Cassandra unreachable, a timeout): the outcome of
   * the tick is unknown, so this instance takes its own log back under a new epoch, which
   * settles it, retrying until Cassandra answers; meanwhile calls are refused UNAVAILABLE.
   */
  private leaderFailed(leader: LogLeader, f: LeaderFailure): void {
    if (this.leader !== leader || this.closing) return;
    const depose = (epoch: number) => {
      this.deposed = true;
      this.options.onDeposed?.(epoch);
    };
    if (f.kind === "deposed") return depose(f.epoch);
    void (async () => {
      for (let attempt = 0; !this.closing; attempt++) {
        try {
          const takenBy = await this.takeOver(leader.epoch);
          if (takenBy !== undefined) depose(takenBy);
          return;
        } catch {
          await this.pause(Math.min(2_000, 50 * 2 ** attempt));
        }
      }
    })();
  }

  /** A wait that close() cuts short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.pauses.delete(done); resolve(); }, ms);
      const done = () => { clearTimeout(t); resolve(); };
      this.pauses.add(done);
    });
  }

  /** A head with no mark: a keyspace written before the marks existed (its old head rows), else 0. */
  private async legacyHead(key: string): Promise<number> {
    const id = key.slice(2);
    if (key.startsWith("c:")) return num((await this.client.execute(this.cql.legacyConvHead, [id], { isIdempotent: true })).first()?.["last_seq"]);
    // The old store wrote a head hint before acknowledging any entry; the log's own writers never do.
    const hint = (await this.client.execute(this.cql.logHeadHint, [id], { isIdempotent: true })).first();
    if (!hint) return 0;
    for (let b = Math.floor(num(hint["head"]) / this.L); ; b++) {
      const row = (await this.client.execute(this.cql.logLast, [id, b], { isIdempotent: true })).first();
      if (!row) return Math.max(num(hint["head"]), b * this.L - 1);
      const p = num(row["pos"]);
      if (p < (b + 1) * this.L - 1) return p;
    }
  }

  /** Runs `fn` alone for `key` (the leader is the only writer, so an in-memory lock serialises a message's changes). */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    const tail = run.catch(() => {});
    this.locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  private async appendGroup(log: LogLeader, group: AppendGroup, tick: TickWrites): Promise<AppendGroupResult> {
    const conv = group.conversationId;
    const result: AppendGroupResult = { conversationId: conv, error: ErrorCode.ERROR_CODE_UNSPECIFIED, messages: [], lastSeq: 0, routeEpoch: 0, routeVersions: [] };
    const head = await log.head(convKey(conv));
    if (head.assigned === 0 && !(await this.dir.conversationExists(conv))) {
      result.error = ErrorCode.ERROR_CODE_NOT_FOUND;
      return result;
    }
    if (head.assigned !== group.baseSeq) {
      // Another owner appended since this one last looked: refuse, it reloads and retries.
      result.error = ErrorCode.ERROR_CODE_CONFLICT;
      result.lastSeq = head.assigned;
      return result;
    }
    // Duplicates: (sender, client_msg_id) already stored, or twice in this group. An index row
    // counts only if a tick committed its message (a deposed leader's may name a reused seq).
    // A first send (the client made the id up and never sent it before) has no earlier copy to
    // find, so its read is skipped: one statement and one round trip of every fresh message.
    const key = (m: { senderId: string; clientMsgId: string }) => `${m.senderId}\u0000${m.clientMsgId}`;
    const known = new Map<string, Message>();
    // Each (sender, id) that may have an earlier copy, once.
    const lookups = new Map(group.messages.filter((m) => !m.firstSend).map((m) => [key(m), m]));
    const members = [...new Set(group.memberIds)];
    const senders = [...new Set(group.messages.map((m) => m.senderId))].filter((s) => members.includes(s));
    await Promise.all([
      ...[...lookups.values()].map(async (m) => {
        const id = await this.client.execute(this.cql.messageId, [conv, m.senderId, m.clientMsgId], { isIdempotent: true });
        const seq = id.first() ? num(id.first()["seq"]) : 0;
        if (!seq || seq > head.committed) return;
        const row = (await this.client.execute(this.cql.message, [conv, Math.floor(seq / this.M), seq], { isIdempotent: true })).first();
        if (row && row["sender_id"] === m.senderId && row["client_msg_id"] === m.clientMsgId) known.set(key(m), rowToMessage(row));
      }),
      ...members.map((u) => log.head(logKey(u))),
      ...senders.map((u) => this.pointer(tick, conv, u)),
    ]);
    // From here to the end nothing awaits: seqs and positions are handed out in one step. The
    // heads are taken again first, before anything is handed out: the leader may have failed, or
    // dropped an idle head, while this group waited (then nothing is numbered, retryable).
    const convHead = log.loaded(convKey(conv));
    const logHeads = members.map((u) => log.loaded(logKey(u)));
    if (convHead.assigned !== group.baseSeq) {
      result.error = ErrorCode.ERROR_CODE_CONFLICT;
      result.lastSeq = convHead.assigned;
      return result;
    }
    let seq = convHead.assigned;
    const at = Date.now();
    const appended: AppendedMessage[] = [];
    for (const m of group.messages) {
      const dup = known.get(key(m));
      if (dup) {
        result.messages.push({ message: dup, duplicate: true, positions: [] });
        continue;
      }
      const message: Message = { conversationId: conv, seq: ++seq, senderId: m.senderId, senderDeviceId: m.senderDeviceId, clientMsgId: m.clientMsgId, text: m.text, sentAtMs: m.sentAtMs, editedAtMs: 0, deleted: false, replyToSeq: m.replyToSeq || undefined };
      known.set(key(m), message);
      const entry: AppendedMessage = { message, duplicate: false, positions: [] };
      result.messages.push(entry);
      appended.push(entry);
      tick.stage(this.cql.insertMessage, [conv, Math.floor(message.seq / this.M), message.seq, m.senderId, m.senderDeviceId, m.clientMsgId, m.text, m.sentAtMs, m.replyToSeq ?? 0]);
      tick.stage(this.cql.insertMessageId, [conv, m.senderId, m.clientMsgId, message.seq]);
    }
    result.lastSeq = seq;
    if (appended.length === 0) return result;
    convHead.assigned = seq;
    tick.head(convKey(conv), seq);
    // A sender has read (and so received) what they sent.
    for (const s of senders) {
      const last = Math.max(...appended.filter((a) => a.message!.senderId === s).map((a) => a.message!.seq), 0);
      const p = this.pointers.get(pointerKey(conv, s))!;
      if (last > p.read) this.setPointer(tick, conv, s, p, Math.max(p.delivered, last), last);
    }
    for (const [i, u] of members.entries()) {
      const h = logHeads[i]!;
      for (const a of appended) {
        const pos = ++h.assigned;
        a.positions.push(pos);
        tick.stage(this.cql.insertLog, [u, Math.floor(pos / this.L), pos, at, conv, a.message!.seq, NO_EVENT, this.logTtl]);
      }
      tick.head(logKey(u), h.assigned);
    }
    // positions[message][member], in memberIds order (a repeated member gets the same positions).
    for (const a of appended) {
      const byMember = new Map(members.map((u, i) => [u, a.positions[i]!]));
      a.positions = group.memberIds.map((u) => byMember.get(u)!);
    }
    return result;
  }

  /**
   * The pointer row of (conversation, user), read once per leader and then kept in memory; held by
   * `tick`'s operation until it releases it (after its tick is answered), so it is not evicted meanwhile.
   */
  private async pointer(tick: TickWrites, conv: string, user: string): Promise<Pointer> {
    const k = pointerKey(conv, user);
    let p = this.pointers.get(k);
    if (!p) {
      const loading = this.pointerLoads.get(k) ?? (async (): Promise<Pointer> => {
        const r = (await this.client.execute(this.cql.pointer, [conv, user], { isIdempotent: true })).first();
        return { delivered: num(r?.["delivered_seq"]), read: num(r?.["read_seq"]), holds: 0 };
      })();
      this.pointerLoads.set(k, loading);
      try {
        const loaded = await loading;
        p = this.pointers.get(k);
        if (!p) {
          this.evictPointers();
          p = loaded;
          this.pointers.set(k, p);
        }
      } finally {
        this.pointerLoads.delete(k);
      }
    }
    tick.hold(p);
    return p;
  }

  /**
   * Makes room for one more pointer at the bound: drops the oldest entries (insertion order), a
   * quarter of the bound at a time, skipping those an operation holds. A held entry may have a write
   * in a tick not yet committed: dropped, it would be read again from a row that does not show that
   * write yet, and the next move would go from an older value, under an acknowledged one (and win:
   * its timestamp is later). Held entries stay even past the bound; they are few and brief.
   */
  private evictPointers(): void {
    const max = this.options.maxPointers ?? MAX_POINTERS;
    if (this.pointers.size < max) return;
    const keep = max - Math.max(1, Math.floor(max / 4));
    for (const [k, p] of this.pointers) {
      if (this.pointers.size <= keep) return;
      if (p.holds === 0) this.pointers.delete(k);
    }
  }

  private setPointer(tick: TickWrites, conv: string, user: string, p: Pointer, delivered: number, read: number): void {
    p.delivered = delivered;
    p.read = read;
    tick.stage(this.cql.setPointers, [delivered, read, conv, user]);
  }

  private async movePointers(updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    const log = this.log();
    const tick = new TickWrites();
    try {
      return await this.movePointersIn(log, tick, updates);
    } finally {
      // The pointers this batch loaded may be evicted again once its tick is answered (or refused).
      tick.release();
    }
  }

  private async movePointersIn(log: LogLeader, tick: TickWrites, updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    const results = await Promise.all(updates.map(async (u): Promise<PointerMoveResult | { deferred: (logHead: Head) => PointerMoveResult }> => {
      if (!(await this.memberSets.has(u.conversationId, u.userId))) return { error: ErrorCode.ERROR_CODE_PERMISSION_DENIED };
      const [head, , p] = await Promise.all([log.head(convKey(u.conversationId)), log.head(logKey(u.userId)), this.pointer(tick, u.conversationId, u.userId)]);
      // Decided after every load, in update order below: two moves of one pointer in a batch see each
      // other (the one entry, held by this batch until its tick is answered).
      return {
        deferred: (logHead) => {
          const last = head.assigned;
          // Pointers never pass the last message nor move back; reading implies delivery.
          const read = Math.max(p.read, Math.min(u.readSeq, last));
          const delivered = Math.max(p.delivered, Math.min(u.deliveredSeq, last), read);
          const changed = read !== p.read || delivered !== p.delivered;
          if (!changed) return { pointers: { deliveredSeq: delivered, readSeq: read, changed } };
          const readMoved = read !== p.read;
          this.setPointer(tick, u.conversationId, u.userId, p, delivered, read);
          let readEvent: Event | undefined;
          if (readMoved) {
            const marker: Event = { pos: ++logHead.assigned, atMs: Date.now(), kind: { $case: "read", value: { conversationId: u.conversationId, readSeq: read } } };
            tick.stage(this.cql.insertLog, [u.userId, Math.floor(marker.pos / this.L), marker.pos, marker.atMs, u.conversationId, 0, encodeEvent(marker), this.logTtl]);
            tick.head(logKey(u.userId), logHead.assigned);
            readEvent = marker;
          }
          return { pointers: { deliveredSeq: delivered, readSeq: read, changed, readEvent } };
        },
      };
    }));
    // Every log head taken before any position is handed out (see appendGroup).
    const logHeads = results.map((r, i) => ("deferred" in r ? log.loaded(logKey(updates[i]!.userId)) : undefined));
    const answered = results.map((r, i) => ("deferred" in r ? r.deferred(logHeads[i]!) : r));
    if (!tick.empty) await log.submit(tick.writes, tick.heads);
    return answered;
  }

  /** Stages events in the logs of `users` (each once) and returns them with their positions. */
  private async logEvents(log: LogLeader, tick: TickWrites, users: string[], conversationId: string, event: Event, seq = 0): Promise<UserEvent[]> {
    const distinct = [...new Set(users)];
    await Promise.all(distinct.map((u) => log.head(logKey(u))));
    // Every head taken before any position is handed out (see appendGroup).
    const heads = distinct.map((u) => log.loaded(logKey(u)));
    const positions = new Map<string, number>();
    for (const [i, u] of distinct.entries()) {
      const h = heads[i]!;
      const pos = ++h.assigned;
      positions.set(u, pos);
      tick.stage(this.cql.insertLog, [u, Math.floor(pos / this.L), pos, event.atMs, conversationId, seq, encodeEvent(event), this.logTtl]);
      tick.head(logKey(u), pos);
    }
    return users.map((userId) => ({ userId, event: { ...event, pos: positions.get(userId)! } }));
  }

  /** Overlays the committed last seq and the pointers on a directory snapshot. */
  private async overlay(c: Conversation): Promise<void> {
    // Only this leader writes pointers, so those it holds are the newest there are: the
    // conversation's row is read only when some member's pointer is not in memory.
    const held = c.members.every((m) => this.pointers.has(pointerKey(c.id, m.userId)));
    const [head, ptrs] = await Promise.all([
      this.log().head(convKey(c.id)),
      held ? undefined : this.client.execute(this.cql.pointersOf, [c.id], { isIdempotent: true }),
    ]);
    c.lastSeq = head.committed;
    const byUser = new Map((ptrs?.rows ?? []).map((r) => [r["user_id"] as string, { delivered: num(r["delivered_seq"]), read: num(r["read_seq"]) }]));
    for (const m of c.members) {
      const p = this.pointers.get(pointerKey(c.id, m.userId)) ?? byUser.get(m.userId);
      m.deliveredSeq = Math.min(p?.delivered ?? 0, c.lastSeq);
      m.readSeq = Math.min(p?.read ?? 0, c.lastSeq);
    }
  }

  /** Inside the directory transaction: the membership event and its recipients, to log after the commit. */
  private async recordOutbox(tx: SqlExecutor, writes: LogWrite[]): Promise<OutboxRow | undefined> {
    const event = writes[0]?.event;
    if (!event) return undefined;
    const userIds = writes.map((w) => w.userId);
    const conversationId = writes[0]!.conversationId;
    const { rows } = await tx.query<{ id: unknown }>(
      `INSERT INTO ${OUTBOX_TABLE} (conversation_id, user_ids, event, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
      [conversationId, userIds, Event.encode(event).finish(), Date.now()],
    );
    return { id: num(rows[0]!.id), conversationId, userIds, event };
  }

  /**
   * Logs an outbox event for its recipients (`only`: those a drain found missing) in one tick,
   * which also records where (log_outbox_done), then deletes the outbox row.
   */
  private async flushOutbox(row: OutboxRow, only?: Set<string>): Promise<UserEvent[]> {
    const log = this.log();
    const tick = new TickWrites();
    const at = row.event.atMs || Date.now();
    const users = only ? row.userIds.filter((u) => only.has(u)) : row.userIds;
    const logged = await this.logEvents(log, tick, users, row.conversationId, { ...row.event, pos: 0, atMs: at }, -row.id);
    tick.stage(this.cql.outboxDone, [Object.fromEntries(logged.map((e) => [e.userId, e.event!.pos])), row.id]);
    await log.submit(tick.writes, tick.heads);
    await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [row.id]);
    return logged;
  }

  /**
   * Membership events whose logging a crash cut short: each recipient's entry counts if a tick
   * committed it (at or below the log's head, the row there being this event); the others are
   * logged now. An edit or deletion left by the store before the log's leader (it used the outbox
   * too) is logged if and only if its message row took it.
   */
  private async drainOutbox(): Promise<void> {
    const { rows } = await this.db.query<{ id: unknown; conversation_id: string; user_ids: string[]; event: Uint8Array }>(
      `SELECT id, conversation_id, user_ids, event FROM ${OUTBOX_TABLE} ORDER BY id`,
    );
    const log = this.log();
    for (const r of rows) {
      const row = { id: num(r.id), conversationId: r.conversation_id, userIds: r.user_ids, event: Event.decode(r.event) };
      const kind = row.event.kind?.$case;
      if (kind === "edited" || kind === "deleted") {
        if (await this.messageChangeApplied(row)) await this.flushOutbox(row);
        else await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [row.id]);
        continue;
      }
      const done = (await this.client.execute(this.cql.outboxDoneOf, [row.id], { isIdempotent: true })).first();
      const positions = (done?.["positions"] ?? {}) as Record<string, unknown>;
      const missing = new Set<string>();
      await Promise.all([...new Set(row.userIds)].map(async (u) => {
        const pos = num(positions[u]);
        const head = (await log.head(logKey(u))).committed;
        const at = pos > 0 && pos <= head ? (await this.client.execute(this.cql.logAt, [u, Math.floor(pos / this.L), pos], { isIdempotent: true })).first() : undefined;
        if (!at || num(at["seq"]) !== -row.id) missing.add(u);
      }));
      if (missing.size > 0) await this.flushOutbox(row, missing);
      else await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [row.id]);
    }
  }

  /** A legacy outbox row of an edit or deletion is logged only if its change was applied (the store before the log's leader). */
  private async messageChangeApplied(row: OutboxRow): Promise<boolean> {
    const k = row.event.kind;
    if (k?.$case !== "edited" && k?.$case !== "deleted") return true;
    const { conversationId, seq } = k.value;
    if (k.$case === "deleted" && !k.value.forEveryone) return true;
    const m = (await this.client.execute(this.cql.message, [conversationId, Math.floor(seq / this.M), seq], { isIdempotent: true })).first();
    const changes = (m?.["changes"] as Array<{ toString(): string }> | null) ?? [];
    return changes.some((id) => num(id) === row.id);
  }
}

/** Pointers kept in memory by default (CassandraStoreOptions.maxPointers); past it the oldest idle ones are dropped. */
const MAX_POINTERS = 1_000_000;

/** A (conversation, user)'s pointers as the leader last wrote or read them. */
interface Pointer {
  delivered: number;
  read: number;
  /** Operations holding it, from its load until their tick is answered (TickWrites.hold): it is not evicted while any does. */
  holds: number;
}

const convKey = (conversationId: string) => `c:${conversationId}`;
const logKey = (userId: string) => `u:${userId}`;
const pointerKey = (conversationId: string, userId: string) => `${conversationId}\u0000${userId}`;

/** A message's log entry carries no event: an empty blob (not null, which would write a tombstone; nor unset, which could keep an earlier write's cell). */
const NO_EVENT = Buffer.alloc(0);
const hasEvent = (r: Row): boolean => { const e = r["event"] as Buffer | null; return !!e && e.length > 0; };
const encodeEvent = (e: Event): Buffer => Buffer.from(Event.encode({ ...e, pos: 0 }).finish());

/** What one operation stages for the leader's next tick: rows, and the heads they move. */
class TickWrites {
  readonly writes: Staged[] = [];
  /** What puts back the cells `writes` change in place, should the tick not commit. */
  readonly restores: Staged[] = [];
  readonly heads = new Map<string, number>();
  /** Pointer entries this operation loaded or wrote: held until it releases them, once its tick is answered. */
  private readonly held: Pointer[] = [];
  private released = false;
  get empty(): boolean {
    return this.writes.length === 0;
  }
  stage(query: string, params: unknown[]): void {
    this.writes.push({ query, params });
  }
  restore(query: string, params: unknown[]): void {
    this.restores.push({ query, params });
  }
  head(key: string, value: number): void {
    this.heads.set(key, Math.max(this.heads.get(key) ?? 0, value));
  }
  /** After release, a load that finishes late (its operation already failed) holds nothing. */
  hold(p: Pointer): void {
    if (this.released) return;
    p.holds++;
    this.held.push(p);
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const p of this.held) p.holds--;
  }
}

/** Infrastructure failures (Cassandra or PostgreSQL down, timing out) become retryable UNAVAILABLE. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ChatError) throw err;
    throw infraErrorToChatError(err) ?? err;
  }
}

function statements(ks: string) {
  return {
    legacyConvHead: `SELECT last_seq FROM ${ks}.conversation_heads WHERE conversation_id = ?`,
    messageId: `SELECT seq FROM ${ks}.message_ids WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`,
    message: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    messagesIn: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq IN ?`,
    messagesBetween: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq >= ? AND seq <= ?`,
    insertMessage: `INSERT INTO ${ks}.messages (conversation_id, bucket, seq, sender_id, sender_device_id, client_msg_id, body, sent_at, reply_to_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    insertMessageId: `INSERT INTO ${ks}.message_ids (conversation_id, sender_id, client_msg_id, seq) VALUES (?, ?, ?, ?)`,
    historyForward: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq >= ? ORDER BY seq ASC LIMIT ?`,
    historyBackward: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq <= ? ORDER BY seq DESC LIMIT ?`,
    pointer: `SELECT delivered_seq, read_seq FROM ${ks}.pointers WHERE conversation_id = ? AND user_id = ?`,
    pointersOf: `SELECT user_id, delivered_seq, read_seq FROM ${ks}.pointers WHERE conversation_id = ?`,
    setPointers: `UPDATE ${ks}.pointers SET delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ?`,
    deletePointers: `DELETE FROM ${ks}.pointers WHERE conversation_id = ? AND user_id = ?`,
    logHeadHint: `SELECT head FROM ${ks}.log_heads WHERE user_id = ?`,
    logLast: `SELECT pos FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? ORDER BY pos DESC LIMIT 1`,
    logAt: `SELECT conversation_id, seq FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? AND pos = ?`,
    readLog: `SELECT pos, at, conversation_id, seq, event FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? AND pos >= ? LIMIT ?`,
    // Every column, always: a row rewritten at a position must not keep a cell of an earlier write there.
    insertLog: `INSERT INTO ${ks}.sync_log (user_id, bucket, pos, at, conversation_id, seq, event) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
    outboxDone: `UPDATE ${ks}.log_outbox_done SET positions = positions + ? WHERE id = ?`,
    outboxDoneOf: `SELECT positions FROM ${ks}.log_outbox_done WHERE id = ?`,
    editMessage: `UPDATE ${ks}.messages SET body = ?, edited_at = ?, edit_count = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    deleteMessage: `UPDATE ${ks}.messages SET body = '', deleted_at = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    insertDeleted: `INSERT INTO ${ks}.deleted_messages (conversation_id, seq) VALUES (?, ?)`,
    undeleteMessage: `UPDATE ${ks}.messages SET body = ?, deleted_at = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    removeDeleted: `DELETE FROM ${ks}.deleted_messages WHERE conversation_id = ? AND seq = ?`,
    deletedAfter: `SELECT count(*) AS n FROM ${ks}.deleted_messages WHERE conversation_id = ? AND seq > ?`,
    insertHidden: `INSERT INTO ${ks}.hidden_messages (user_id, conversation_id, seq) VALUES (?, ?, ?)`,
    hiddenAt: `SELECT seq FROM ${ks}.hidden_messages WHERE user_id = ? AND conversation_id = ? AND seq = ?`,
    unhide: `DELETE FROM ${ks}.hidden_messages WHERE user_id = ? AND conversation_id = ? AND seq = ?`,
    hiddenOf: `SELECT seq FROM ${ks}.hidden_messages WHERE user_id = ? AND conversation_id = ?`,
    sentBy: `SELECT seq FROM ${ks}.message_ids WHERE conversation_id = ? AND sender_id = ?`,
    deletedIn: `SELECT seq FROM ${ks}.deleted_messages WHERE conversation_id = ?`,
  };
}
