import cassandra from "cassandra-driver";
import { AppendGroup, type AppendGroupResult, type AppendedMessage, type AppendMessage, type ChangeMessageRequest, type Session, type User, type UserEvent } from "../../gen/chat/internal/v1/store.js";
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
import { claimWriterDc } from "./cassandra-writer-dc.js";
import { checkKeyspace, migrateCassandra } from "./schema-cassandra.js";
import { num, type SqlClient, type SqlExecutor } from "./sql.js";
import { type LogWrite, SqlStore } from "./store-sql.js";
import { fillEditedTexts, liveEvents, planMessageChange } from "./store-rules.js";
import { fitBytes, historyLimit, type LogPage, type PointerMoveResult, type PointerUpdate, type Store, updateEachPointer } from "./store.js";
import { sleep } from "../run/sleep.js";

/*
 * The message store of the production profile: PostgreSQL keeps the directory
 * (users, conversations, membership, mute: small, relational, transactional),
 * Cassandra keeps what grows with traffic (messages, dedupe index, conversation
 * heads, per-user sync logs, read pointers).
 *
 * Consistency. Plain reads and writes use LOCAL_QUORUM: with RF 3 per DC a read
 * quorum overlaps every acknowledged write quorum, so a write this store
 * acknowledged is seen by the next read from any instance of the DC, and one
 * replica may be down. Every compare-and-set (conversation heads, sync-log
 * positions, pointers) is a lightweight transaction with LOCAL_SERIAL: Paxos
 * among the local DC's replicas, which is what makes two overlapping owners
 * unable to write the same seq or the same log position; reads that decide a
 * CAS (log head, pointer row) are LOCAL_SERIAL too so they see any in-flight
 * Paxos round completed. LOCAL_ rather than cross-DC: a conversation is owned
 * in one DC at a time and cross-DC Paxos would cost a WAN round trip per append.
 *
 * Append protocol (P1: a seq is never written twice).
 *  1. Read the conversation head; if it carries a pending intent, replay it.
 *  2. Refuse a stale base_seq (CONFLICT); resolve duplicates by message_ids.
 *  3. Commit point: LWT `SET last_seq = new, pending = intent IF last_seq = base
 *     AND pending = null`. Not applied: CONFLICT (after replaying a pending one).
 *  4. Apply the intent with idempotent writes: message rows, message_ids, the
 *     sender's pointers, one entry per member in each member's sync log.
 *  5. `SET pending = null IF last_seq = new`.
 * Whoever finds a pending intent (next append, lastSeq, history, readLog of a
 * member, a conversation read) replays it, so a crash after 3 never leaves a
 * half-written batch and a crash before 3 writes nothing visible. The next
 * intent of a conversation can only commit after the previous one is cleared,
 * so every member logs a conversation's messages in seq order.
 *
 * Sync-log positions are gapless and never written twice: a user's entries are
 * written by a conditional BATCH of `INSERT ... IF NOT EXISTS` at head+1..head+k
 * on one partition (atomic), the head being read at LOCAL_SERIAL; a not-applied
 * batch re-reads the head and retries. Replays are idempotent through log_index:
 * before each batch the candidate positions of its (conversation, seq) entries
 * are recorded there, and after reading the head an entry whose candidate
 * position really holds it in sync_log is not written again (a batch that won
 * happened before our head read, so its index rows are visible; one that did
 * not is concurrent and our own batch conflicts with it).
 *
 * Membership events come from the PostgreSQL directory transaction: they are
 * recorded in an outbox table in the same transaction, moved to the members'
 * Cassandra logs after the commit (idempotently, keyed by the outbox id) and
 * deleted; an instance drains leftovers at start.
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

interface LogEntry {
  conversationId: string;
  /** > 0: a message reference; < 0: an outbox event key; 0: an event without idempotency key (read marker). */
  seq: number;
  event: Event | null;
  at: number;
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
  private readonly cql: ReturnType<typeof statements>;
  /**
   * Per conversation, the last seq whose intent this instance itself applied and
   * cleared: the next append from that base skips reading the head (the commit's
   * condition still checks it). Per user, the last log position this instance
   * wrote: the next entries are tried right after it (the conditional insert
   * still refuses a taken position, and then the head is read at LOCAL_SERIAL).
   * Both are hints: dropped on any conflict, bounded in size.
   */
  private readonly appliedThrough = new Map<string, number>();
  private readonly logHeadHints = new Map<string, number>();
  /** Per (conversation, user), the pointer row as this instance last wrote or saw it (a hint, like the above). */
  private readonly pointerHints = new Map<string, { delivered: number; read: number; exists: boolean }>();

  private constructor(
    private readonly dir: SqlStore,
    private readonly db: SqlClient,
    private readonly client: cassandra.Client,
    keyspace: string,
    messagesPerBucket: number,
    logEntriesPerBucket: number,
  ) {
    this.M = messagesPerBucket;
    this.L = logEntriesPerBucket;
    this.cql = statements(keyspace);
  }

  /** Migrates both schemas, then drains membership events a crash left in the outbox. */
  static async open(db: SqlClient, client: cassandra.Client, options: CassandraStoreOptions): Promise<CassandraStore> {
    return guard(async () => {
      const ks = checkKeyspace(options.keyspace);
      const dir = await SqlStore.open(db);
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
      const store = new CassandraStore(dir, db, client, ks, m, l);
      await store.drainOutbox();
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
      const box: { row?: OutboxRow } = {};
      const r = await this.dir.createConversationWith(conversation, createdBy, maxMembers, async (tx, writes) => {
        box.row = await this.recordOutbox(tx, writes);
        return [];
      });
      if (!r.created) {
        await this.overlay(r.conversation);
        return r;
      }
      await this.ensureHead(r.conversation.id);
      const events = box.row ? await this.flushOutbox(box.row) : [];
      return { ...r, events };
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
    return guard(async () => {
      const box: { row?: OutboxRow } = {};
      const r = await this.dir.changeMembershipWith(req, async (tx, writes) => {
        // The snapshot in the event (and returned) carries Cassandra's last_seq and pointers.
        const event = writes[0]?.event;
        if (event?.kind?.$case === "membership" && event.kind.value.conversation) await this.overlay(event.kind.value.conversation, false);
        box.row = await this.recordOutbox(tx, writes);
        return [];
      });
      if (req.action === MembershipAction.MEMBERSHIP_ACTION_REMOVED || req.action === MembershipAction.MEMBERSHIP_ACTION_LEFT) {
        // A member who comes back starts with fresh pointers, as a new members row does in SQL.
        await this.client.execute(this.cql.deletePointers, [req.conversationId, req.subjectId], { serialConsistency: consistencies.localSerial });
      }
      const events = box.row ? await this.flushOutbox(box.row) : [];
      return { conversation: r.conversation, events };
    });
  }

  listConversations(userId: string): Promise<Conversation[]> {
    return guard(async () => {
      const list = await this.dir.listConversations(userId);
      await Promise.all(list.map(async (c) => {
        await this.overlay(c);
        c.readSeq = c.members.find((m) => m.userId === userId)?.readSeq ?? 0;
        // A message deleted for everyone is no longer there to read.
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
    return guard(() => this.dir.isMember(conversationId, userId));
  }

  setMuted(conversationId: string, userId: string, muted: boolean): Promise<void> {
    return guard(() => this.dir.setMuted(conversationId, userId, muted));
  }

  // ---- messages (Cassandra) ----

  append(groups: AppendGroup[]): Promise<AppendGroupResult[]> {
    return guard(async () => {
      const results: AppendGroupResult[] = new Array(groups.length);
      // Groups of one conversation in order (the second sees the first's seqs), conversations in parallel.
      const byConv = new Map<string, number[]>();
      groups.forEach((g, i) => byConv.set(g.conversationId, [...(byConv.get(g.conversationId) ?? []), i]));
      await Promise.all([...byConv.values()].map(async (idxs) => {
        for (const i of idxs) results[i] = await this.appendGroup(groups[i]!);
      }));
      return results;
    });
  }

  lastSeq(conversationId: string): Promise<number> {
    return guard(async () => {
      const head = await this.loadHead(conversationId);
      if (!head) throw ChatError.notFound("no such conversation");
      return head.lastSeq;
    });
  }

  readLog(userId: string, afterPos: number, limit: number, maxBytes = PAGE_MAX_BYTES): Promise<LogPage> {
    return guard(async () => {
      // A pending intent of one of the user's conversations may owe this log entries.
      const convs = await this.dir.conversationIdsOf(userId);
      await Promise.all(convs.map((c) => this.loadHead(c, false)));
      const head = await this.logHead(userId, consistencies.localQuorum);
      const rows: Row[] = [];
      let p = afterPos + 1;
      while (rows.length < limit && p <= head) {
        const b = Math.floor(p / this.L);
        const r = await this.client.execute(this.cql.readLog, [userId, b, p, limit - rows.length], { isIdempotent: true });
        rows.push(...r.rows);
        p = (b + 1) * this.L;
      }
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
        const decoded = chunk.map((r) => (r["event"] ? Event.decode(r["event"] as Buffer) : undefined));
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
      const last = events[events.length - 1]?.pos ?? 0;
      // Unset rather than false at the end of the log: a page there reads as before.
      return { events, head: Math.max(head, last), more: cut || rows.length === limit || undefined };
    });
  }

  /** The messages that log rows refer to (rows carrying a whole event need none), one query per (conversation, bucket). */
  private async messagesOf(rows: Row[]): Promise<Map<string, Message>> {
    const want = new Map<string, { conv: string; bucket: number; seqs: number[] }>();
    for (const r of rows) {
      if (r["event"]) continue;
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
      const r = await this.client.execute(this.cql.messagesIn, [w.conv, w.bucket, w.seqs], { isIdempotent: true });
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
   * An edit or deletion, made crash-safe with the directory's outbox: (1) the event is
   * recorded in the outbox (PostgreSQL) under id K; (2) the message row changes by
   * compare-and-set (so the edit cap and "deleted" hold under concurrent requests) and
   * records K in its `changes`; (3) the event is moved to the concerned logs, keyed by -K
   * (idempotent), and the outbox row deleted. A refused change deletes its outbox row. An
   * instance that died in between leaves the row, and the next start (drainOutbox) logs
   * it if and only if the message row holds K (a delete for me is simply applied again).
   */
  changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]> {
    return guard(async () => {
      const conv = await this.dir.conversationRow(req.conversationId);
      const conversation = conv && { kind: conv.kind, createdBy: conv.createdBy };
      // A pending intent may still owe this message's row: replay it first.
      await this.loadHead(req.conversationId, false);
      const b = Math.floor(req.seq / this.M);
      for (let attempt = 0; ; attempt++) {
        const row = (await this.client.execute(this.cql.message, [req.conversationId, b, req.seq], { consistency: consistencies.localSerial, isIdempotent: true })).first();
        const state = row ? { senderId: row["sender_id"] as string, sentAtMs: num(row["sent_at"]), editCount: num(row["edit_count"]), deleted: num(row["deleted_at"]) > 0 } : undefined;
        const plan = planMessageChange(req, state, conversation, conv?.members ?? []);
        const outbox = (await this.recordOutbox(this.db, plan.recipients.map((userId) => ({ userId, conversationId: req.conversationId, seq: req.seq, event: plan.stored }))))!;
        // A failure from here on leaves the outbox row to drainOutbox, which checks the message.
        let applied = true;
        if (plan.editCount !== undefined) {
          applied = (await this.client.execute(this.cql.editMessage, [req.text, req.atMs, plan.editCount, [outbox.id], req.conversationId, b, req.seq, row!["edit_count"] ?? null, row!["deleted_at"] ?? null])).wasApplied();
        } else if (plan.deleteForEveryone) {
          applied = (await this.client.execute(this.cql.deleteMessage, [req.atMs, [outbox.id], req.conversationId, b, req.seq, row!["deleted_at"] ?? null])).wasApplied();
          if (applied) await this.client.execute(this.cql.insertDeleted, [req.conversationId, req.seq], { isIdempotent: true });
        } else {
          await this.client.execute(this.cql.insertHidden, [req.actorId, req.conversationId, req.seq], { isIdempotent: true });
        }
        if (!applied) {
          await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [outbox.id]);
          if (attempt >= 20) throw ChatError.unavailable("message change contention");
          continue;
        }
        return liveEvents(await this.flushOutbox(outbox), plan.live);
      }
    });
  }

  /** An outbox row of an edit or deletion is logged only if its change was applied (see changeMessage). */
  private async messageChangeApplied(row: OutboxRow): Promise<boolean> {
    const k = row.event.kind;
    if (k?.$case !== "edited" && k?.$case !== "deleted") return true;
    const { conversationId, seq } = k.value;
    if (k.$case === "deleted" && !k.value.forEveryone) {
      await this.client.execute(this.cql.insertHidden, [k.value.actorId, conversationId, seq], { isIdempotent: true });
      return true;
    }
    const m = (await this.client.execute(this.cql.message, [conversationId, Math.floor(seq / this.M), seq], { consistency: consistencies.localSerial, isIdempotent: true })).first();
    const changes = (m?.["changes"] as Array<{ toString(): string }> | null) ?? [];
    return changes.some((id) => num(id) === row.id);
  }

  /** From the dedupe index (one partition per conversation and sender), less the conversation's tombstones. */
  sentMessages(conversationId: string, senderId: string): Promise<number[]> {
    return guard(async () => {
      const [sent, deleted] = await Promise.all([
        this.client.execute(this.cql.sentBy, [conversationId, senderId], { isIdempotent: true, fetchSize: 100_000 }),
        this.client.execute(this.cql.deletedIn, [conversationId], { isIdempotent: true, fetchSize: 100_000 }),
      ]);
      const gone = new Set(deleted.rows.map((r) => num(r["seq"])));
      return sent.rows.map((r) => num(r["seq"])).filter((seq) => !gone.has(seq)).sort((a, b) => a - b);
    });
  }

  hiddenSeqs(userId: string, conversationId: string): Promise<number[]> {
    return guard(async () => (await this.client.execute(this.cql.hiddenOf, [userId, conversationId], { isIdempotent: true })).rows.map((r) => num(r["seq"])));
  }

  /**
   * One read per user, the head hint: every append writes it (a max-register) before it is
   * acknowledged, so it is at or past every acknowledged entry; only a write still in flight,
   * or one whose writer died before acknowledging it, can be past it, which a check may miss.
   * The edges' head check asks this for every online user each minute: the exact head (the
   * hint, then the last bucket's last row) would double those reads.
   */
  logHeads(userIds: string[]): Promise<number[]> {
    return guard(() => Promise.all(userIds.map(async (u) => num((await this.client.execute(this.cql.logHeadHint, [u], { isIdempotent: true })).first()?.["head"]))));
  }

  history(userId: string, req: HistoryRequest, maxBytes = PAGE_MAX_BYTES): Promise<HistoryPage> {
    return guard(async () => {
      if (!(await this.dir.isMember(req.conversationId, userId))) throw ChatError.denied();
      const last = (await this.loadHead(req.conversationId))?.lastSeq ?? 0;
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
        const found = hidden.size === 0 ? read : read.filter((m) => !hidden.has(m.seq));
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

  updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    return updateEachPointer(this, updates);
  }

  updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number) {
    return guard(async () => {
      if (!(await this.dir.isMember(conversationId, userId))) throw ChatError.denied();
      const last = (await this.loadHead(conversationId))?.lastSeq ?? 0;
      // Pointers never pass the last message nor move back; reading implies delivery.
      const moved = await this.movePointers(conversationId, userId, (cur) => {
        const read = Math.max(cur.read, Math.min(readSeq, last));
        const delivered = Math.max(cur.delivered, Math.min(deliveredSeq, last), read);
        return { delivered, read };
      });
      const { delivered, read } = moved.after;
      const changed = read !== moved.before.read || delivered !== moved.before.delivered;
      if (!changed) return { deliveredSeq: delivered, readSeq: read, changed };
      let readEvent: Event | undefined;
      if (read !== moved.before.read) {
        const marker: Event = { pos: 0, atMs: Date.now(), kind: { $case: "read", value: { conversationId, readSeq: read } } };
        const [pos] = await this.appendUserLog(userId, [{ conversationId, seq: 0, event: marker, at: marker.atMs }]);
        readEvent = { ...marker, pos: pos! };
      }
      return { deliveredSeq: delivered, readSeq: read, changed, readEvent };
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.client.shutdown(), this.dir.close()]);
  }

  // ---- internals ----

  private async appendGroup(group: AppendGroup): Promise<AppendGroupResult> {
    const conv = group.conversationId;
    const result: AppendGroupResult = { conversationId: conv, error: ErrorCode.ERROR_CODE_UNSPECIFIED, messages: [], lastSeq: 0 };
    const head = this.appliedThrough.get(conv) === group.baseSeq ? { lastSeq: group.baseSeq } : await this.loadHead(conv);
    if (!head) {
      result.error = ErrorCode.ERROR_CODE_NOT_FOUND;
      return result;
    }
    result.lastSeq = head.lastSeq;
    // Another owner appended since this one last looked: refuse, it reloads and retries.
    if (head.lastSeq !== group.baseSeq) {
      result.error = ErrorCode.ERROR_CODE_CONFLICT;
      return result;
    }
    // Duplicates: (sender, client_msg_id) already stored, or twice in this group.
    const key = (m: { senderId: string; clientMsgId: string }) => `${m.senderId}\u0000${m.clientMsgId}`;
    const known = new Map<string, Message>();
    const distinct = new Map(group.messages.map((m) => [key(m), m]));
    await Promise.all([...distinct.values()].map(async (m) => {
      const id = await this.client.execute(this.cql.messageId, [conv, m.senderId, m.clientMsgId], { isIdempotent: true });
      const seq = id.first() ? num(id.first()["seq"]) : 0;
      if (!seq) return;
      const row = await this.client.execute(this.cql.message, [conv, Math.floor(seq / this.M), seq], { isIdempotent: true });
      if (row.first()) known.set(key(m), rowToMessage(row.first()));
    }));
    let seq = head.lastSeq;
    const fresh: AppendMessage[] = [];
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
      fresh.push(m);
    }
    result.lastSeq = seq;
    if (fresh.length === 0) return result;
    // Commit point.
    const intent: AppendGroup = { conversationId: conv, baseSeq: head.lastSeq, messages: fresh, memberIds: group.memberIds };
    const lwt = await this.client.execute(this.cql.commitIntent, [seq, Buffer.from(AppendGroup.encode(intent).finish()), conv, head.lastSeq]);
    if (!lwt.wasApplied()) {
      this.appliedThrough.delete(conv);
      const cur = lwt.first();
      const pending = cur?.["pending"] as Buffer | null | undefined;
      if (pending) await this.applyIntent(AppendGroup.decode(pending), num(cur["last_seq"]));
      return { conversationId: conv, error: ErrorCode.ERROR_CODE_CONFLICT, messages: [], lastSeq: num(cur?.["last_seq"]) };
    }
    const positions = await this.applyIntent(intent, seq);
    appended.forEach((a, i) => a.positions.push(...positions[i]!));
    return result;
  }

  /**
   * Writes a committed intent (idempotent: any number of instances may run it,
   * even concurrently) and clears it. Returns positions[message][member].
   */
  private async applyIntent(intent: AppendGroup, newLastSeq: number): Promise<number[][]> {
    const conv = intent.conversationId;
    const at = Date.now();
    const msgs: Message[] = intent.messages.map((m, i) => ({
      conversationId: conv, seq: intent.baseSeq + 1 + i, senderId: m.senderId, senderDeviceId: m.senderDeviceId, clientMsgId: m.clientMsgId, text: m.text, sentAtMs: m.sentAtMs, editedAtMs: 0, deleted: false, replyToSeq: m.replyToSeq || undefined,
    }));
    await Promise.all(msgs.flatMap((m) => [
      this.client.execute(this.cql.insertMessage, [conv, Math.floor(m.seq / this.M), m.seq, m.senderId, m.senderDeviceId, m.clientMsgId, m.text, m.sentAtMs, m.replyToSeq ?? 0], { isIdempotent: true }),
      this.client.execute(this.cql.insertMessageId, [conv, m.senderId, m.clientMsgId, m.seq], { isIdempotent: true }),
    ]));
    const members = [...new Set(intent.memberIds)];
    // A sender has read (and so received) what they sent.
    const bySender = new Map<string, number>();
    for (const m of msgs) if (members.includes(m.senderId)) bySender.set(m.senderId, Math.max(bySender.get(m.senderId) ?? 0, m.seq));
    const logged = new Map<string, number[]>();
    await Promise.all([
      ...[...bySender].map(([user, s]) => this.movePointers(conv, user, (cur) => ({ delivered: Math.max(cur.delivered, s), read: Math.max(cur.read, s) }))),
      ...members.map(async (user) => {
        logged.set(user, await this.appendUserLog(user, msgs.map((m) => ({ conversationId: conv, seq: m.seq, event: null, at }))));
      }),
    ]);
    await this.client.execute(this.cql.clearIntent, [conv, newLastSeq]);
    remember(this.appliedThrough, conv, newLastSeq);
    return msgs.map((_, i) => intent.memberIds.map((u) => logged.get(u)![i]!));
  }

  /** The conversation's last seq after replaying a pending intent; null if the conversation does not exist. */
  private async loadHead(conv: string, ensure = true): Promise<{ lastSeq: number } | null> {
    const r = await this.client.execute(this.cql.head, [conv], { isIdempotent: true });
    const row = r.first();
    if (!row) {
      // Created in PostgreSQL but the head row not written yet (or a crash in between).
      if (!ensure || !(await this.dir.conversationExists(conv))) return null;
      await this.ensureHead(conv);
      return this.loadHead(conv, false);
    }
    const lastSeq = num(row["last_seq"]);
    const pending = row["pending"] as Buffer | null;
    if (pending) await this.applyIntent(AppendGroup.decode(pending), lastSeq);
    return { lastSeq };
  }

  private async ensureHead(conv: string): Promise<void> {
    await this.client.execute(this.cql.createHead, [conv]);
  }

  /** Overlays Cassandra's last seq and pointers on a directory snapshot. */
  private async overlay(c: Conversation, ensure = true): Promise<void> {
    const [head, ptrs] = await Promise.all([
      this.loadHead(c.id, ensure),
      this.client.execute(this.cql.pointersOf, [c.id], { isIdempotent: true }),
    ]);
    c.lastSeq = head?.lastSeq ?? 0;
    const byUser = new Map(ptrs.rows.map((r) => [r["user_id"] as string, r]));
    for (const m of c.members) {
      const p = byUser.get(m.userId);
      m.deliveredSeq = num(p?.["delivered_seq"]);
      m.readSeq = num(p?.["read_seq"]);
    }
  }

  /** Moves a pointer row by compare-and-set until `next` is stored or nothing changes. */
  private async movePointers(conv: string, user: string, next: (cur: { delivered: number; read: number }) => { delivered: number; read: number }) {
    const key = `${conv}\u0000${user}`;
    // A hinted row is tried directly: the compare-and-set refuses it if it is stale.
    let hint = this.pointerHints.get(key);
    for (let attempt = 0; ; attempt++) {
      let row: { delivered: number; read: number; exists: boolean };
      if (hint) {
        row = hint;
        hint = undefined;
      } else {
        const r = await this.client.execute(this.cql.pointer, [conv, user], { consistency: consistencies.localSerial, isIdempotent: true });
        const found = r.first();
        row = { delivered: num(found?.["delivered_seq"]), read: num(found?.["read_seq"]), exists: !!found };
      }
      const before = { delivered: row.delivered, read: row.read };
      const after = next(before);
      // Pointers only move forward, so what needs no change from a hint needs none from the row either.
      if (after.delivered === before.delivered && after.read === before.read) return { before, after };
      const w = row.exists
        ? await this.client.execute(this.cql.updatePointers, [after.delivered, after.read, conv, user, before.delivered, before.read])
        : await this.client.execute(this.cql.insertPointers, [conv, user, after.delivered, after.read]);
      if (w.wasApplied()) {
        remember(this.pointerHints, key, { ...after, exists: true });
        return { before, after };
      }
      this.pointerHints.delete(key);
      if (attempt > 100) throw ChatError.unavailable("pointer contention");
      await sleep(Math.random() * Math.min(50, 2 ** attempt));
    }
  }

  /** The user's log head: from the head hint, the last position of the last non-full bucket. */
  private async logHead(user: string, consistency: number): Promise<number> {
    const hint = num((await this.client.execute(this.cql.logHeadHint, [user], { isIdempotent: true })).first()?.["head"]);
    for (let b = Math.floor(hint / this.L); ; b++) {
      const r = await this.client.execute(this.cql.logLast, [user, b], { consistency, isIdempotent: true });
      const row = r.first();
      if (!row) return Math.max(hint, b * this.L - 1);
      const p = num(row["pos"]);
      if (p < (b + 1) * this.L - 1) return p;
    }
  }

  /**
   * Appends entries to one user's log at the next positions, in order, each
   * keyed entry (seq != 0) at most once. Returns each entry's position.
   */
  private async appendUserLog(user: string, entries: LogEntry[]): Promise<number[]> {
    const pos = new Array<number>(entries.length).fill(0);
    let remaining = entries.map((_, i) => i);
    let hint = this.logHeadHints.get(user);
    for (let conflicts = 0; remaining.length > 0; ) {
      // The entries a concurrent replay logged before this instance's last write here are visible
      // to findLogged below; one that logged after it took the hinted position and the batch fails.
      const head = hint ?? await this.logHead(user, consistencies.localSerial);
      hint = undefined;
      // After the head read: any batch that already logged one of ours is visible in log_index.
      const keyed = remaining.filter((i) => entries[i]!.seq !== 0);
      if (keyed.length > 0) {
        const done = await this.findLogged(user, keyed.map((i) => entries[i]!));
        keyed.forEach((i, k) => { if (done[k]) pos[i] = done[k]!; });
        remaining = remaining.filter((i) => pos[i] === 0);
        if (remaining.length === 0) break;
      }
      const first = head + 1;
      const b = Math.floor(first / this.L);
      const chunk = remaining.slice(0, (b + 1) * this.L - first);
      const candidates = chunk.map((i, j) => ({ e: entries[i]!, p: first + j })).filter((x) => x.e.seq !== 0);
      await Promise.all(candidates.map((x) => this.client.execute(this.cql.indexLog, [user, x.e.conversationId, x.e.seq, x.p], { isIdempotent: true })));
      const batch = chunk.map((i, j) => {
        const e = entries[i]!;
        // Unset, not null: a bound null writes a cell tombstone, one per message entry, read back by every catch-up.
        const blob = e.event ? Buffer.from(Event.encode({ ...e.event, pos: 0 }).finish()) : cassandra.types.unset;
        return { query: this.cql.insertLog, params: [user, b, first + j, e.at, e.conversationId, e.seq, blob] };
      });
      const r = await this.client.batch(batch, { prepare: true, serialConsistency: consistencies.localSerial });
      if (r.wasApplied()) {
        chunk.forEach((i, j) => { pos[i] = first + j; });
        remaining = remaining.slice(chunk.length);
        const h = first + chunk.length - 1;
        await this.client.execute(this.cql.setLogHeadHint, [user, h, h], { isIdempotent: true });
        remember(this.logHeadHints, user, h);
        hint = h;
        conflicts = 0;
        continue;
      }
      this.logHeadHints.delete(user);
      if (++conflicts > 200) throw ChatError.unavailable("sync log contention");
      await sleep(Math.random() * Math.min(50, 2 ** conflicts));
    }
    return pos;
  }

  /** For each keyed entry, the position it is already logged at (0 if none). */
  private async findLogged(user: string, entries: LogEntry[]): Promise<number[]> {
    const byConv = new Map<string, number[]>();
    for (const e of entries) byConv.set(e.conversationId, [...(byConv.get(e.conversationId) ?? []), e.seq]);
    const candidates = new Map<string, number[]>();
    await Promise.all([...byConv].map(async ([conv, seqs]) => {
      const r = await this.client.execute(this.cql.indexLookup, [user, conv, seqs], { isIdempotent: true });
      for (const row of r.rows) {
        const k = `${conv}\u0000${num(row["seq"])}`;
        candidates.set(k, [...(candidates.get(k) ?? []), num(row["pos"])]);
      }
    }));
    return Promise.all(entries.map(async (e) => {
      for (const p of candidates.get(`${e.conversationId}\u0000${e.seq}`) ?? []) {
        const r = await this.client.execute(this.cql.logAt, [user, Math.floor(p / this.L), p], { consistency: consistencies.localSerial, isIdempotent: true });
        const row = r.first();
        if (row && row["conversation_id"] === e.conversationId && num(row["seq"]) === e.seq) return p;
      }
      return 0;
    }));
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

  /** Logs an outbox event for each recipient (once each, whoever runs it), then deletes it. */
  private async flushOutbox(row: OutboxRow): Promise<UserEvent[]> {
    const users = [...new Set(row.userIds)];
    const at = row.event.atMs || Date.now();
    const positions = new Map<string, number>();
    await Promise.all(users.map(async (u) => {
      const [p] = await this.appendUserLog(u, [{ conversationId: row.conversationId, seq: -row.id, event: { ...row.event, pos: 0, atMs: at }, at }]);
      positions.set(u, p!);
    }));
    await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [row.id]);
    return row.userIds.map((userId) => ({ userId, event: { ...row.event, atMs: at, pos: positions.get(userId)! } }));
  }

  private async drainOutbox(): Promise<void> {
    const { rows } = await this.db.query<{ id: unknown; conversation_id: string; user_ids: string[]; event: Uint8Array }>(
      `SELECT id, conversation_id, user_ids, event FROM ${OUTBOX_TABLE} ORDER BY id`,
    );
    for (const r of rows) {
      const row = { id: num(r.id), conversationId: r.conversation_id, userIds: r.user_ids, event: Event.decode(r.event) };
      if (await this.messageChangeApplied(row)) await this.flushOutbox(row);
      else await this.db.query(`DELETE FROM ${OUTBOX_TABLE} WHERE id = $1`, [row.id]);
    }
  }
}

const MAX_HINTS = 100_000;

/** Keeps a hint; a full map is dropped whole (hints are only ever a shortcut). */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_HINTS && !map.has(key)) map.clear();
  map.set(key, value);
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
    head: `SELECT last_seq, pending FROM ${ks}.conversation_heads WHERE conversation_id = ?`,
    createHead: `INSERT INTO ${ks}.conversation_heads (conversation_id, last_seq) VALUES (?, 0) IF NOT EXISTS`,
    commitIntent: `UPDATE ${ks}.conversation_heads SET last_seq = ?, pending = ? WHERE conversation_id = ? IF last_seq = ? AND pending = null`,
    clearIntent: `UPDATE ${ks}.conversation_heads SET pending = null WHERE conversation_id = ? IF last_seq = ?`,
    messageId: `SELECT seq FROM ${ks}.message_ids WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`,
    message: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    messagesIn: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq IN ?`,
    insertMessage: `INSERT INTO ${ks}.messages (conversation_id, bucket, seq, sender_id, sender_device_id, client_msg_id, body, sent_at, reply_to_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    insertMessageId: `INSERT INTO ${ks}.message_ids (conversation_id, sender_id, client_msg_id, seq) VALUES (?, ?, ?, ?)`,
    historyForward: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq >= ? ORDER BY seq ASC LIMIT ?`,
    historyBackward: `SELECT * FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq <= ? ORDER BY seq DESC LIMIT ?`,
    pointer: `SELECT delivered_seq, read_seq FROM ${ks}.pointers WHERE conversation_id = ? AND user_id = ?`,
    pointersOf: `SELECT user_id, delivered_seq, read_seq FROM ${ks}.pointers WHERE conversation_id = ?`,
    insertPointers: `INSERT INTO ${ks}.pointers (conversation_id, user_id, delivered_seq, read_seq) VALUES (?, ?, ?, ?) IF NOT EXISTS`,
    updatePointers: `UPDATE ${ks}.pointers SET delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ? IF delivered_seq = ? AND read_seq = ?`,
    deletePointers: `DELETE FROM ${ks}.pointers WHERE conversation_id = ? AND user_id = ? IF EXISTS`,
    logHeadHint: `SELECT head FROM ${ks}.log_heads WHERE user_id = ?`,
    // A max-register: the write timestamp is the head itself, so a late smaller write loses.
    setLogHeadHint: `INSERT INTO ${ks}.log_heads (user_id, head) VALUES (?, ?) USING TIMESTAMP ?`,
    logLast: `SELECT pos FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? ORDER BY pos DESC LIMIT 1`,
    logAt: `SELECT conversation_id, seq FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? AND pos = ?`,
    readLog: `SELECT pos, at, conversation_id, seq, event FROM ${ks}.sync_log WHERE user_id = ? AND bucket = ? AND pos >= ? LIMIT ?`,
    insertLog: `INSERT INTO ${ks}.sync_log (user_id, bucket, pos, at, conversation_id, seq, event) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
    indexLog: `INSERT INTO ${ks}.log_index (user_id, conversation_id, seq, pos) VALUES (?, ?, ?, ?)`,
    indexLookup: `SELECT seq, pos FROM ${ks}.log_index WHERE user_id = ? AND conversation_id = ? AND seq IN ?`,
    editMessage: `UPDATE ${ks}.messages SET body = ?, edited_at = ?, edit_count = ?, changes = changes + ? WHERE conversation_id = ? AND bucket = ? AND seq = ? IF edit_count = ? AND deleted_at = ?`,
    deleteMessage: `UPDATE ${ks}.messages SET body = '', deleted_at = ?, changes = changes + ? WHERE conversation_id = ? AND bucket = ? AND seq = ? IF deleted_at = ?`,
    insertDeleted: `INSERT INTO ${ks}.deleted_messages (conversation_id, seq) VALUES (?, ?)`,
    deletedAfter: `SELECT count(*) AS n FROM ${ks}.deleted_messages WHERE conversation_id = ? AND seq > ?`,
    insertHidden: `INSERT INTO ${ks}.hidden_messages (user_id, conversation_id, seq) VALUES (?, ?, ?)`,
    hiddenOf: `SELECT seq FROM ${ks}.hidden_messages WHERE user_id = ? AND conversation_id = ?`,
    sentBy: `SELECT seq FROM ${ks}.message_ids WHERE conversation_id = ? AND sender_id = ?`,
    deletedIn: `SELECT seq FROM ${ks}.deleted_messages WHERE conversation_id = ?`,
  };
}
