import { RouteVersions } from "../routes/route-versions.js";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { recordDirectoryRead } from "./directory-reads.js";
import type { AppendGroup, AppendGroupResult, ChangeMessageRequest, User, UserEvent } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, Event, HistoryDirection, type HistoryPage, type HistoryRequest, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { ITEM_OVERHEAD_BYTES, PAGE_MAX_BYTES } from "../grpc/message-size.js";
import { migrateSqlite } from "./schema-sqlite.js";
import { SqliteSessionStore } from "./sessions-sqlite.js";
import { SqlitePrivacyStore } from "./privacy-sqlite.js";
import { DirectoryTables } from "./directory-tables.js";
import { SqliteBlockStore } from "./blocks-sqlite.js";
import { SqliteDb } from "./sqlite-db.js";
import { fitBytes, logContinuity, historyLimit, TRIM_BATCH, type LogPage, type PointerMoveResult, type PointerResult, type PointerUpdate, type Store } from "./store.js";
import { fillEditedTexts, liveEvents, memberOf, type LogWrite, type MembershipRequest, type MessageRow, memberLogWrites, membershipEvent, movePointers, numberAppend, placeLogged, planMembershipChange, planMessageChange, toMessage } from "./store-rules.js";

/** SQLite's `synchronous` setting: NORMAL survives the kill of any process, FULL (an fsync per commit) survives power loss. */
export type SqliteSync = "normal" | "full";

/**
 * The embedded profile's store: SQLite in WAL mode through Node's built-in
 * `node:sqlite`, in the message-store process. Every method runs to the end
 * synchronously, so a transaction is never interleaved with another in this
 * process, and BEGIN IMMEDIATE takes the file's write lock first, so a second
 * process (or a second owner in tests) waits instead of interleaving. A
 * transaction costs tens of microseconds (PGlite's cost ~10 ms whatever it
 * held): docs/performance.md has the figures and docs/dependencies.md the choice.
 *
 * The schema and the rules match the SQL store's (store-sql.ts): a stale
 * base_seq is refused per group, per-user log positions are gapless, a
 * client_msg_id is stored once per sender and conversation.
 */
export class SqliteStore extends DirectoryTables implements Store {
  private readonly sql: SqliteDb;
  /** This process commits every write of the log (route-versions.ts). */
  readonly routeVersions = new RouteVersions();

  private constructor(private readonly db: DatabaseSync) {
    const sql = new SqliteDb(db);
    super(new SqliteSessionStore(sql), new SqlitePrivacyStore(sql), new SqliteBlockStore(sql));
    this.sql = sql;
  }

  /** Opens (creating if needed) the database file; ":memory:" for a private in-memory one. */
  static open(file: string, sync: SqliteSync = "normal"): SqliteStore {
    const db = new DatabaseSync(file);
    try {
      db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"}; PRAGMA busy_timeout = 5000;`);
      migrateSqlite(db);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(db);
  }

  async createUser(user: User): Promise<void> {
    const r = this.q(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING`)
      .run(user.id, user.username, user.passwordHash, user.createdAtMs);
    if (Number(r.changes) === 0) throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_EXISTS, `username ${user.username} is taken`);
  }

  async getUserByName(username: string): Promise<User | null> {
    const r = this.q(`SELECT id, username, password_hash, created_at, deleted_at FROM users WHERE username = ?1`).get(username) as
      | { id: string; username: string; password_hash: string; created_at: number; deleted_at: number }
      | undefined;
    return r ? { id: r.id, username: r.username, passwordHash: r.password_hash, createdAtMs: r.created_at, deletedAtMs: r.deleted_at } : null;
  }

  async getUsers(ids: string[]): Promise<User[]> {
    if (ids.length === 0) return [];
    const rows = this.q(`SELECT id, username, created_at FROM users WHERE id IN (SELECT value FROM json_each(?1))`).all(JSON.stringify(ids)) as Array<{ id: string; username: string; created_at: number }>;
    return rows.map((r) => ({ id: r.id, username: r.username, passwordHash: "", createdAtMs: r.created_at, deletedAtMs: 0 }));
  }

  async createConversation(conversation: Conversation, createdBy: string, maxMembers: number) {
    const memberIds = [...new Set(conversation.members.map((m) => m.userId))];
    if (memberIds.length > maxMembers) throw new ChatError(ErrorCode.ERROR_CODE_GROUP_FULL, `a group has at most ${maxMembers} members`);
    return this.tx(() => {
      const now = conversation.createdAtMs || Date.now();
      const ins = this.q(`INSERT INTO conversations (id, kind, title, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING`)
        .run(conversation.id, conversation.kind, conversation.title, createdBy, now);
      if (Number(ins.changes) === 0) return { conversation: this.loadConversation(conversation.id)!, created: false, events: [] as UserEvent[] };
      const addMember = this.q(`INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?1, ?2, ?3)`);
      for (const userId of memberIds) addMember.run(conversation.id, userId, now);
      const snapshot = this.loadConversation(conversation.id)!;
      const event = membershipEvent(snapshot, MembershipAction.MEMBERSHIP_ACTION_CREATED, createdBy, createdBy, now);
      const events = this.appendLog(memberIds.map((userId) => ({ userId, conversationId: snapshot.id, seq: 0, event })));
      return { conversation: snapshot, created: true, events };
    });
  }

  async getConversation(id: string) {
    const conversation = this.loadConversation(id);
    if (!conversation) return null;
    const muted = this.q(`SELECT user_id FROM members WHERE conversation_id = ?1 AND muted = 1`).all(id) as Array<{ user_id: string }>;
    return { conversation, mutedUserIds: muted.map((r) => r.user_id) };
  }

  async changeMembership(req: MembershipRequest) {
    return this.tx(() => {
      const row = this.q(`SELECT kind, created_by FROM conversations WHERE id = ?1`).get(req.conversationId) as { kind: number; created_by: string } | undefined;
      const members = this.memberIds(req.conversationId);
      const plan = planMembershipChange(req, row && { kind: row.kind, createdBy: row.created_by }, members);
      const now = Date.now();
      if (plan.add) this.q(`INSERT INTO members (conversation_id, user_id, joined_at) VALUES (?1, ?2, ?3)`).run(req.conversationId, plan.add, now);
      if (plan.remove) this.q(`DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2`).run(req.conversationId, plan.remove);
      const snapshot = this.loadConversation(req.conversationId)!;
      const event = membershipEvent(snapshot, req.action, req.actorId, req.subjectId, now);
      const events = this.appendLog(plan.recipients.map((userId) => ({ userId, conversationId: snapshot.id, seq: 0, event })));
      return { conversation: snapshot, events };
    });
  }

  async listConversations(userId: string): Promise<Conversation[]> {
    // One file, no replicas: counted as the other stores count a list on their primary.
    recordDirectoryRead({ servedBy: "primary", reason: "no_replicas" });
    // Two statements whatever the number of conversations: the user's rows, then every member of them.
    const convs = this.q(
      `SELECT c.id, c.kind, c.title, c.created_at, c.last_seq, m.read_seq, m.muted,
              (SELECT count(*) FROM messages d WHERE d.conversation_id = c.id AND d.seq > m.read_seq AND d.deleted_at > 0) AS deleted_unread
         FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ?1 ORDER BY c.created_at, c.id`,
    ).all(userId) as Array<{ id: string; kind: number; title: string; created_at: number; last_seq: number; read_seq: number; muted: number; deleted_unread: number }>;
    const members = new Map<string, Member[]>();
    const rows = this.q(
      `SELECT m.conversation_id, m.user_id, u.username, m.delivered_seq, m.read_seq, u.deleted_at FROM members m JOIN users u ON u.id = m.user_id
        WHERE m.conversation_id IN (SELECT conversation_id FROM members WHERE user_id = ?1) ORDER BY m.conversation_id, m.joined_at, m.user_id`,
    ).all(userId) as Array<{ conversation_id: string; user_id: string; username: string; delivered_seq: number; read_seq: number; deleted_at: number }>;
    for (const m of rows) {
      const list = members.get(m.conversation_id) ?? [];
      list.push(memberOf(m.user_id, m.username, m.delivered_seq, m.read_seq, m.deleted_at));
      members.set(m.conversation_id, list);
    }
    return convs.map((c) => Conversation.create({
      id: c.id,
      kind: c.kind as ConversationKind,
      title: c.title,
      createdAtMs: c.created_at,
      lastSeq: c.last_seq,
      members: members.get(c.id) ?? [],
      readSeq: c.read_seq,
      // A message deleted for everyone is no longer there to read.
      unread: Math.max(0, c.last_seq - c.read_seq - c.deleted_unread),
      muted: c.muted === 1,
    }));
  }

  async groupsCreatedSince(userId: string, sinceMs: number): Promise<number> {
    const r = this.q(`SELECT count(*) AS n FROM conversations WHERE created_by = ?1 AND created_at >= ?2 AND kind = ?3`).get(userId, sinceMs, ConversationKind.CONVERSATION_KIND_GROUP) as { n: number };
    return Number(r.n);
  }

  async contactIds(userId: string): Promise<string[]> {
    const ids = (this.q(`SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.conversation_id = m.conversation_id WHERE m.user_id = ?1`).all(userId) as Array<{ user_id: string }>).map((r) => r.user_id);
    return ids.includes(userId) ? ids : [userId, ...ids];
  }

  async isMember(conversationId: string, userId: string): Promise<boolean> {
    return this.q(`SELECT 1 AS one FROM members WHERE conversation_id = ?1 AND user_id = ?2`).get(conversationId, userId) !== undefined;
  }

  async setMuted(conversationId: string, userId: string, muted: boolean): Promise<void> {
    const r = this.q(`UPDATE members SET muted = ?3 WHERE conversation_id = ?1 AND user_id = ?2`).run(conversationId, userId, muted ? 1 : 0);
    if (Number(r.changes) === 0) throw ChatError.denied();
  }

  async append(groups: AppendGroup[]): Promise<AppendGroupResult[]> {
    return this.tx(() => {
      const findDup = this.q(`SELECT * FROM messages WHERE conversation_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3`);
      const { results, fresh } = numberAppend(groups, (id) => this.head(id), (c, sender, clientMsgId) => {
        const row = findDup.get(c, sender, clientMsgId) as MessageRow | undefined;
        return row && toMessage(row);
      });
      if (fresh.length === 0) return results;
      const insert = this.q(`INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_msg_id, body, sent_at, reply_to_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`);
      for (const f of fresh) for (const { message: m } of f.appended) insert.run(m!.conversationId, m!.seq, m!.senderId, m!.senderDeviceId, m!.clientMsgId, m!.text, m!.sentAtMs, m!.replyToSeq ?? 0);
      const setHead = this.q(`UPDATE conversations SET last_seq = ?2 WHERE id = ?1`);
      for (const f of fresh) setHead.run(f.group.conversationId, f.result.lastSeq);
      // A sender has read (and so received) what they sent.
      const senderRead = this.q(`UPDATE members SET read_seq = max(read_seq, ?3), delivered_seq = max(delivered_seq, ?3) WHERE conversation_id = ?1 AND user_id = ?2`);
      for (const f of fresh) for (const a of f.appended) senderRead.run(a.message!.conversationId, a.message!.senderId, a.message!.seq);
      // One sync-log entry per member per message, positions from the heads this transaction holds.
      placeLogged(fresh, this.appendLog(memberLogWrites(fresh)));
      return results;
    });
  }

  async lastSeq(conversationId: string): Promise<number> {
    const head = this.head(conversationId);
    if (head === undefined) throw ChatError.notFound("no such conversation");
    return head;
  }

  async readLog(userId: string, afterPos: number, limit: number, maxBytes = PAGE_MAX_BYTES): Promise<LogPage> {
    // Edit and delete entries name their message too (seq), so an edit's text, filled in
    // from the row, counts in the budget like a message's.
    // The head before the rows: every position it counts is then in them unless trimmed (logContinuity).
    const head = this.logHead(userId);
    // Sizes first (octet_length reads no body), so a page of large messages is
    // cut at the byte budget before any body is read.
    const sized = this.q(
      `SELECT l.pos, coalesce(octet_length(l.event), 0) + coalesce(octet_length(m.body), 0) AS bytes
         FROM sync_log l LEFT JOIN messages m ON m.conversation_id = l.conversation_id AND m.seq = l.seq
        WHERE l.user_id = ?1 AND l.pos > ?2 ORDER BY l.pos LIMIT ?3`,
    ).all(userId, afterPos, limit) as Array<{ pos: number; bytes: number }>;
    const continuous = logContinuity(afterPos, head, sized.map((r) => r.pos));
    if ("trimmedTo" in continuous) return { events: [], head, more: true, trimmedTo: continuous.trimmedTo };
    const take = fitBytes(sized.slice(0, continuous.take).map((r) => r.bytes + ITEM_OVERHEAD_BYTES), maxBytes);
    const lastPos = take > 0 ? sized[take - 1]!.pos : afterPos;
    const rows = take === 0 ? [] : (this.q(
      `SELECT l.pos, l.at, l.event, m.*
         FROM sync_log l LEFT JOIN messages m ON l.event IS NULL AND m.conversation_id = l.conversation_id AND m.seq = l.seq
        WHERE l.user_id = ?1 AND l.pos > ?2 AND l.pos <= ?3 ORDER BY l.pos`,
    ).all(userId, afterPos, lastPos) as unknown as Array<MessageRow & { pos: number; at: number; event: Uint8Array | null }>);
    const events = rows.map((r): Event => {
      if (r.event) return { ...Event.decode(r.event), pos: r.pos };
      return { pos: r.pos, atMs: r.at, kind: { $case: "message", value: toMessage(r) } };
    });
    await fillEditedTexts(events, async (c, seqs) => this.texts(c, seqs));
    // Unset rather than false at the end of the log: a page there reads as before.
    return { events, head, more: take < sized.length || sized.length === limit || undefined };
  }

  async trimLog(beforeMs: number): Promise<number> {
    // A batch per transaction (oldest first, by sync_log_by_at), so sends wait behind a short one at most.
    const batch = this.q(`DELETE FROM sync_log WHERE (user_id, pos) IN (SELECT user_id, pos FROM sync_log WHERE at < ?1 ORDER BY at LIMIT ?2)`);
    let total = 0;
    for (;;) {
      const n = Number(this.tx(() => batch.run(beforeMs, TRIM_BATCH)).changes);
      total += n;
      if (n < TRIM_BATCH) return total;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  async logHeads(userIds: string[]): Promise<number[]> {
    return userIds.map((u) => this.logHead(u));
  }

  async history(userId: string, req: HistoryRequest, maxBytes = PAGE_MAX_BYTES): Promise<HistoryPage> {
    if (!(await this.isMember(req.conversationId, userId))) throw ChatError.denied();
    const limit = historyLimit(req.limit);
    const forward = req.direction === HistoryDirection.HISTORY_DIRECTION_FORWARD;
    const from = req.fromSeq;
    // Sizes first, as in readLog: the page is cut at the byte budget before bodies are read.
    // What the user deleted for themselves is not in their pages.
    const visible = `NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ?4 AND h.conversation_id = messages.conversation_id AND h.seq = messages.seq)`;
    const sized = (forward
      ? this.q(`SELECT seq, octet_length(body) AS bytes FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND ${visible} ORDER BY seq ASC LIMIT ?3`).all(req.conversationId, from, limit + 1, userId)
      : this.q(`SELECT seq, octet_length(body) AS bytes FROM messages WHERE conversation_id = ?1 AND (?2 = 0 OR seq < ?2) AND ${visible} ORDER BY seq DESC LIMIT ?3`).all(req.conversationId, from, limit + 1, userId)
    ) as Array<{ seq: number; bytes: number }>;
    const take = fitBytes(sized.slice(0, limit).map((r) => r.bytes + ITEM_OVERHEAD_BYTES), maxBytes);
    const hasMore = sized.length > take;
    if (take === 0) return { conversationId: req.conversationId, messages: [], hasMore, nextFromSeq: from };
    const seqs = sized.slice(0, take).map((r) => r.seq);
    const rows = this.q(`SELECT * FROM messages WHERE conversation_id = ?1 AND seq IN (SELECT value FROM json_each(?2)) ORDER BY seq ${forward ? "ASC" : "DESC"}`)
      .all(req.conversationId, JSON.stringify(seqs)) as unknown as MessageRow[];
    const messages = rows.map(toMessage);
    const last = messages[messages.length - 1];
    return { conversationId: req.conversationId, messages, hasMore, nextFromSeq: last ? last.seq : from };
  }

  async updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number): Promise<PointerResult> {
    return this.tx(() => this.movePointers({ conversationId, userId, deliveredSeq, readSeq }));
  }

  async updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    // One transaction for the whole batch: one commit, however many acks a tick gathered.
    return this.tx(() => updates.map((u): PointerMoveResult => {
      try {
        return { pointers: this.movePointers(u) };
      } catch (err) {
        // Refused before anything was written for this move (not a member).
        if (err instanceof ChatError) return { error: err.code };
        throw err;
      }
    }));
  }

  async changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]> {
    return this.tx(() => {
      const conv = this.q(`SELECT kind, created_by FROM conversations WHERE id = ?1`).get(req.conversationId) as { kind: number; created_by: string } | undefined;
      const row = this.q(`SELECT sender_id, sent_at, edit_count, deleted_at FROM messages WHERE conversation_id = ?1 AND seq = ?2`).get(req.conversationId, req.seq) as
        | { sender_id: string; sent_at: number; edit_count: number; deleted_at: number }
        | undefined;
      const plan = planMessageChange(req, row && { senderId: row.sender_id, sentAtMs: row.sent_at, editCount: row.edit_count, deleted: row.deleted_at > 0 }, conv && { kind: conv.kind, createdBy: conv.created_by }, this.memberIds(req.conversationId));
      if (plan.editCount !== undefined) {
        this.q(`UPDATE messages SET body = ?3, edited_at = ?4, edit_count = ?5 WHERE conversation_id = ?1 AND seq = ?2`).run(req.conversationId, req.seq, req.text, req.atMs, plan.editCount);
      }
      // The tombstone: the text is gone from the only table that held it (log entries refer to the row).
      if (plan.deleteForEveryone) this.q(`UPDATE messages SET body = '', deleted_at = ?3 WHERE conversation_id = ?1 AND seq = ?2`).run(req.conversationId, req.seq, req.atMs);
      if (plan.hide) this.q(`INSERT INTO hidden_messages (user_id, conversation_id, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING`).run(req.actorId, req.conversationId, req.seq);
      const logged = this.appendLog(plan.recipients.map((userId) => ({ userId, conversationId: req.conversationId, seq: req.seq, event: plan.stored })));
      return liveEvents(logged, plan.live);
    });
  }

  async hiddenSeqs(userId: string, conversationId: string): Promise<number[]> {
    return (this.q(`SELECT seq FROM hidden_messages WHERE user_id = ?1 AND conversation_id = ?2 ORDER BY seq`).all(userId, conversationId) as Array<{ seq: number }>).map((r) => r.seq);
  }

  async sentMessages(conversationId: string, senderId: string): Promise<number[]> {
    // The (conversation_id, sender_id, client_msg_id) index finds them without reading the others.
    return (this.q(`SELECT seq FROM messages WHERE conversation_id = ?1 AND sender_id = ?2 AND deleted_at = 0 ORDER BY seq`).all(conversationId, senderId) as Array<{ seq: number }>).map((r) => r.seq);
  }

  private texts(conversationId: string, seqs: number[]): Map<number, string> {
    const rows = this.q(`SELECT seq, body FROM messages WHERE conversation_id = ?1 AND seq IN (SELECT value FROM json_each(?2))`).all(conversationId, JSON.stringify(seqs)) as Array<{ seq: number; body: string }>;
    return new Map(rows.map((r) => [r.seq, r.body]));
  }

  private movePointers({ conversationId, userId, deliveredSeq, readSeq }: PointerUpdate): PointerResult {
    const row = this.q(
      `SELECT m.delivered_seq, m.read_seq, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.conversation_id = ?1 AND m.user_id = ?2`,
    ).get(conversationId, userId) as { delivered_seq: number; read_seq: number; last_seq: number } | undefined;
    if (!row) throw ChatError.denied();
    const { deliveredSeq: delivered, readSeq: read, changed, readMoved } = movePointers({ delivered: row.delivered_seq, read: row.read_seq, last: row.last_seq }, deliveredSeq, readSeq);
    if (!changed) return { deliveredSeq: delivered, readSeq: read, changed };
    this.q(`UPDATE members SET delivered_seq = ?3, read_seq = ?4 WHERE conversation_id = ?1 AND user_id = ?2`).run(conversationId, userId, delivered, read);
    let readEvent: Event | undefined;
    if (readMoved) {
      const marker: Event = { pos: 0, atMs: Date.now(), kind: { $case: "read", value: { conversationId, readSeq: read } } };
      readEvent = this.appendLog([{ userId, conversationId, seq: 0, event: marker }])[0]!.event;
    }
    return { deliveredSeq: delivered, readSeq: read, changed, readEvent };
  }

  async close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
  }

  private q(sql: string): StatementSync {
    return this.sql.q(sql);
  }

  private tx<T>(fn: () => T): T {
    return this.sql.tx(fn);
  }

  private head(conversationId: string): number | undefined {
    return (this.q(`SELECT last_seq FROM conversations WHERE id = ?1`).get(conversationId) as { last_seq: number } | undefined)?.last_seq;
  }

  private logHead(userId: string): number {
    return (this.q(`SELECT head FROM log_heads WHERE user_id = ?1`).get(userId) as { head: number } | undefined)?.head ?? 0;
  }

  private memberIds(conversationId: string): string[] {
    return (this.q(`SELECT user_id FROM members WHERE conversation_id = ?1`).all(conversationId) as Array<{ user_id: string }>).map((r) => r.user_id);
  }

  /** Appends entries to users' logs at the next positions (inside the caller's transaction). */
  private appendLog(writes: LogWrite[]): UserEvent[] {
    const next = new Map<string, number>();
    for (const w of writes) if (!next.has(w.userId)) next.set(w.userId, this.logHead(w.userId));
    const at = Date.now();
    const insert = this.q(`INSERT INTO sync_log (user_id, pos, at, conversation_id, seq, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)`);
    const out: UserEvent[] = [];
    for (const w of writes) {
      const pos = next.get(w.userId)! + 1;
      next.set(w.userId, pos);
      const event: Event = w.event ? { ...w.event, pos, atMs: w.event.atMs || at } : { pos, atMs: at, kind: undefined };
      out.push({ userId: w.userId, event });
      insert.run(w.userId, pos, at, w.conversationId, w.seq, w.event ? Event.encode({ ...event, pos: 0 }).finish() : null);
    }
    const setHead = this.q(`INSERT INTO log_heads (user_id, head) VALUES (?1, ?2) ON CONFLICT (user_id) DO UPDATE SET head = excluded.head`);
    for (const [userId, head] of next) setHead.run(userId, head);
    return out;
  }

  private loadConversation(id: string): Conversation | null {
    const c = this.q(`SELECT id, kind, title, created_at, last_seq FROM conversations WHERE id = ?1`).get(id) as
      | { id: string; kind: number; title: string; created_at: number; last_seq: number }
      | undefined;
    if (!c) return null;
    const members = this.q(
      `SELECT m.user_id, u.username, m.delivered_seq, m.read_seq, u.deleted_at FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = ?1 ORDER BY m.joined_at, m.user_id`,
    ).all(id) as Array<{ user_id: string; username: string; delivered_seq: number; read_seq: number; deleted_at: number }>;
    return Conversation.create({
      id: c.id,
      kind: c.kind as ConversationKind,
      title: c.title,
      createdAtMs: c.created_at,
      lastSeq: c.last_seq,
      members: members.map((m) => memberOf(m.user_id, m.username, m.delivered_seq, m.read_seq, m.deleted_at)),
    });
  }
}

