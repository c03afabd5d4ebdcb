import type { AppendGroup, AppendGroupResult, ChangeMessageRequest, User, UserEvent } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, Event, HistoryDirection, type HistoryPage, type HistoryRequest, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { ITEM_OVERHEAD_BYTES, PAGE_MAX_BYTES } from "../grpc/message-size.js";
import { migrate } from "./schema.js";
import { SqlSessionStore } from "./sessions-sql.js";
import { SqlPrivacyStore } from "./privacy-sql.js";
import { DirectoryTables } from "./directory-tables.js";
import type { DirectoryReads } from "./directory-reads.js";
import { PrimaryReads } from "./directory-reads-primary.js";
import { SqlBlockStore } from "./blocks-sql.js";
import { num, type SqlClient, type SqlExecutor } from "./sql.js";
import { fitBytes, logContinuity, historyLimit, TRIM_BATCH, type LogPage, type PointerMoveResult, type PointerUpdate, type Store, updateEachPointer } from "./store.js";
import { fillEditedTexts, memberOf, liveEvents, type LogWrite, type MembershipRequest, type MessageRow, memberLogWrites, membershipEvent, movePointers, numberAppend, placeLogged, planMembershipChange, planMessageChange, toMessage } from "./store-rules.js";

export type { LogWrite } from "./store-rules.js";


/**
 * Where the directory's membership events go. `record` runs inside the directory's
 * transaction; what it returns runs once that transaction has committed and answers the events
 * as logged. SqlStore's own log writes them in the transaction (one commit for both); the
 * Cassandra store records them in an outbox there and logs them after the commit
 * (docs/architecture.md, "The store's two interfaces").
 */
export interface MembershipLog {
  record(tx: SqlExecutor, writes: LogWrite[]): Promise<() => Promise<UserEvent[]>>;
}

/**
 * The store on PostgreSQL SQL, used both embedded (PGlite) and against a server
 * (pg). Sequencing is enforced by the database: a conversation row lock and the
 * base_seq check make an append from a stale owner fail instead of writing a
 * duplicate position, and per-user log heads are locked in user-id order so
 * concurrent appends cannot deadlock.
 */
export class SqlStore extends DirectoryTables implements Store {
  private readonly membership: MembershipLog;

  private constructor(private readonly db: SqlClient, private readonly reads: DirectoryReads, membership: MembershipLog | undefined) {
    super(new SqlSessionStore(db), new SqlPrivacyStore(db), new SqlBlockStore(db));
    this.membership = membership ?? {
      record: async (tx, writes) => {
        const events = await this.appendLog(tx, writes);
        return async () => events;
      },
    };
  }

  /**
   * `reads`: where the conversation list runs (the primary unless replicas are named: factory.ts).
   * `membership`: where membership events go (this store's own sync log unless given: the
   * Cassandra store keeps its directory here and its log in Cassandra).
   */
  static async open(db: SqlClient, reads: DirectoryReads = new PrimaryReads(db), membership?: MembershipLog): Promise<SqlStore> {
    await migrate(db);
    return new SqlStore(db, reads, membership);
  }

  async createUser(user: User): Promise<void> {
    const r = await this.db.query(
      `INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [user.id, user.username, user.passwordHash, user.createdAtMs],
    );
    if (r.rowCount === 0) throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_EXISTS, `username ${user.username} is taken`);
  }

  async getUserByName(username: string): Promise<User | null> {
    const { rows } = await this.db.query<{ id: string; username: string; password_hash: string; created_at: unknown; deleted_at: unknown }>(
      `SELECT id, username, password_hash, created_at, deleted_at FROM users WHERE username = $1`,
      [username],
    );
    const r = rows[0];
    return r ? { id: r.id, username: r.username, passwordHash: r.password_hash, createdAtMs: num(r.created_at), deletedAtMs: num(r.deleted_at) } : null;
  }

  async getUsers(ids: string[]): Promise<User[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.db.query<{ id: string; username: string; created_at: unknown }>(
      `SELECT id, username, created_at FROM users WHERE id = ANY($1::text[])`,
      [ids],
    );
    return rows.map((r) => ({ id: r.id, username: r.username, passwordHash: "", createdAtMs: num(r.created_at), deletedAtMs: 0 }));
  }

  async createConversation(conversation: Conversation, createdBy: string, maxMembers: number) {
    const memberIds = [...new Set(conversation.members.map((m) => m.userId))];
    if (memberIds.length > maxMembers) throw new ChatError(ErrorCode.ERROR_CODE_GROUP_FULL, `a group has at most ${maxMembers} members`);
    const r = await this.db.transaction(async (tx) => {
      const now = conversation.createdAtMs || Date.now();
      const ins = await tx.query(
        `INSERT INTO conversations (id, kind, title, created_by, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
        [conversation.id, conversation.kind, conversation.title, createdBy, now],
      );
      if (ins.rowCount === 0) {
        const existing = await this.loadConversation(tx, conversation.id);
        return { conversation: existing!, created: false, logged: undefined };
      }
      await tx.query(
        `INSERT INTO members (conversation_id, user_id, joined_at) SELECT $1, u, $2 FROM unnest($3::text[]) AS u`,
        [conversation.id, now, memberIds],
      );
      const snapshot = (await this.loadConversation(tx, conversation.id))!;
      const event = membershipEvent(snapshot, MembershipAction.MEMBERSHIP_ACTION_CREATED, createdBy, createdBy, now);
      const logged = await this.membership.record(tx, memberIds.map((userId) => ({ userId, conversationId: snapshot.id, seq: 0, event })));
      return { conversation: snapshot, created: true, logged };
    });
    return { conversation: r.conversation, created: r.created, events: r.logged ? await r.logged() : [] };
  }

  async getConversation(id: string) {
    const conversation = await this.loadConversation(this.db, id);
    if (!conversation) return null;
    const { rows } = await this.db.query<{ user_id: string }>(`SELECT user_id FROM members WHERE conversation_id = $1 AND muted`, [id]);
    return { conversation, mutedUserIds: rows.map((r) => r.user_id) };
  }

  async changeMembership(req: MembershipRequest) {
    const r = await this.db.transaction(async (tx) => {
      const conv = await tx.query<{ kind: number; created_by: string }>(`SELECT kind, created_by FROM conversations WHERE id = $1 FOR UPDATE`, [req.conversationId]);
      const row = conv.rows[0];
      const members = (await tx.query<{ user_id: string }>(`SELECT user_id FROM members WHERE conversation_id = $1`, [req.conversationId])).rows.map((r) => r.user_id);
      const plan = planMembershipChange(req, row && { kind: row.kind, createdBy: row.created_by }, members);
      const now = Date.now();
      if (plan.add) await tx.query(`INSERT INTO members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3)`, [req.conversationId, plan.add, now]);
      if (plan.remove) await tx.query(`DELETE FROM members WHERE conversation_id = $1 AND user_id = $2`, [req.conversationId, plan.remove]);
      const snapshot = (await this.loadConversation(tx, req.conversationId))!;
      const event = membershipEvent(snapshot, req.action, req.actorId, req.subjectId, now);
      const logged = await this.membership.record(tx, plan.recipients.map((userId) => ({ userId, conversationId: snapshot.id, seq: 0, event })));
      return { conversation: snapshot, logged };
    });
    return { conversation: r.conversation, events: await r.logged() };
  }

  /** Two queries whatever the number of conversations: theirs, then all their members (not 1 + 2 per conversation). */
  listConversations(userId: string): Promise<Conversation[]> {
    return this.reads.read((db) => this.listConversationsIn(db, userId));
  }

  private async listConversationsIn(db: SqlExecutor, userId: string): Promise<Conversation[]> {
    const { rows } = await db.query<ConversationRow & { read_seq: unknown; muted: boolean; deleted_unread: unknown }>(
      `SELECT c.id, c.kind, c.title, c.created_at, c.last_seq, m.read_seq, m.muted,
              (SELECT count(*) FROM messages d WHERE d.conversation_id = c.id AND d.seq > m.read_seq AND d.deleted_at > 0) AS deleted_unread
         FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1 ORDER BY c.created_at`,
      [userId],
    );
    if (rows.length === 0) return [];
    const members = await this.membersOf(db, rows.map((r) => r.id));
    return rows.map((r) => {
      const c = conversationOf(r, members.get(r.id) ?? []);
      c.readSeq = num(r.read_seq);
      // A message deleted for everyone is no longer there to read.
      c.unread = Math.max(0, c.lastSeq - c.readSeq - num(r.deleted_unread));
      c.muted = r.muted;
      return c;
    });
  }

  async groupsCreatedSince(userId: string, sinceMs: number): Promise<number> {
    const { rows } = await this.db.query<{ n: unknown }>(
      `SELECT count(*) AS n FROM conversations WHERE created_by = $1 AND created_at >= $2 AND kind = $3`,
      [userId, sinceMs, ConversationKind.CONVERSATION_KIND_GROUP],
    );
    return num(rows[0]?.n);
  }

  async contactIds(userId: string): Promise<string[]> {
    // One query: a presence request of a user in 10,000 groups used to cost a listConversations (~20,000 queries).
    const { rows } = await this.db.query<{ user_id: string }>(
      `SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.conversation_id = m.conversation_id WHERE m.user_id = $1`,
      [userId],
    );
    const ids = rows.map((r) => r.user_id);
    return ids.includes(userId) ? ids : [userId, ...ids];
  }

  async setMuted(conversationId: string, userId: string, muted: boolean): Promise<void> {
    const r = await this.db.query(`UPDATE members SET muted = $3 WHERE conversation_id = $1 AND user_id = $2`, [conversationId, userId, muted]);
    if (r.rowCount === 0) throw ChatError.denied();
  }

  async append(groups: AppendGroup[]): Promise<AppendGroupResult[]> {
    // Set-based: a batch costs the same handful of statements whatever its size.
    return this.db.transaction(async (tx) => {
      const ids = [...new Set(groups.map((g) => g.conversationId))].sort();
      const heads = await tx.query<{ id: string; last_seq: unknown }>(`SELECT id, last_seq FROM conversations WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [ids]);
      const headOf = new Map(heads.rows.map((r) => [r.id, num(r.last_seq)]));
      const all = groups.flatMap((g) => g.messages.map((m) => ({ conv: g.conversationId, m })));
      const existing = all.length === 0 ? { rows: [] as MessageRow[] } : await tx.query<MessageRow>(
        `SELECT m.* FROM messages m JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(c, s, id) ON m.conversation_id = k.c AND m.sender_id = k.s AND m.client_msg_id = k.id`,
        [all.map((x) => x.conv), all.map((x) => x.m.senderId), all.map((x) => x.m.clientMsgId)],
      );
      const known = new Map(existing.rows.map((r) => [`${r.conversation_id}\u0000${r.sender_id}\u0000${r.client_msg_id}`, toMessage(r)]));
      const { results, fresh } = numberAppend(groups, (id) => headOf.get(id), (c, sender, clientMsgId) => known.get(`${c}\u0000${sender}\u0000${clientMsgId}`));
      if (fresh.length === 0) return results;
      const msgs = fresh.flatMap((f) => f.appended.map((a) => a.message!));
      await tx.query(
        `INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_msg_id, body, sent_at, reply_to_seq)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])`,
        [msgs.map((m) => m.conversationId), msgs.map((m) => m.seq), msgs.map((m) => m.senderId), msgs.map((m) => m.senderDeviceId), msgs.map((m) => m.clientMsgId), msgs.map((m) => m.text), msgs.map((m) => m.sentAtMs), msgs.map((m) => m.replyToSeq ?? 0)],
      );
      await tx.query(`UPDATE conversations SET last_seq = d.seq FROM unnest($1::text[], $2::bigint[]) AS d(id, seq) WHERE conversations.id = d.id`, [fresh.map((f) => f.group.conversationId), fresh.map((f) => f.result.lastSeq)]);
      // A sender has read (and so received) what they sent.
      const bySender = new Map<string, { conv: string; user: string; seq: number }>();
      for (const m of msgs) bySender.set(`${m.conversationId}\u0000${m.senderId}`, { conv: m.conversationId, user: m.senderId, seq: m.seq });
      const sv = [...bySender.values()];
      await tx.query(
        `UPDATE members SET read_seq = GREATEST(read_seq, d.seq), delivered_seq = GREATEST(delivered_seq, d.seq)
           FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(c, u, seq) WHERE members.conversation_id = d.c AND members.user_id = d.u`,
        [sv.map((x) => x.conv), sv.map((x) => x.user), sv.map((x) => x.seq)],
      );
      // One sync-log entry per member per message, positions from the locked heads.
      placeLogged(fresh, await this.appendLog(tx, memberLogWrites(fresh)));
      return results;
    });
  }

  async lastSeq(conversationId: string): Promise<number> {
    const { rows } = await this.db.query<{ last_seq: unknown }>(`SELECT last_seq FROM conversations WHERE id = $1`, [conversationId]);
    if (!rows[0]) throw ChatError.notFound("no such conversation");
    return num(rows[0].last_seq);
  }

  async readLog(userId: string, afterPos: number, limit: number, maxBytes = PAGE_MAX_BYTES): Promise<LogPage> {
    // Edit and delete entries name their message too (seq), so an edit's text, filled in
    // from the row, counts in the budget like a message's.
    // The head before the rows: every position it counts is then in them unless trimmed (logContinuity).
    const head = num((await this.db.query<{ head: unknown }>(`SELECT head FROM log_heads WHERE user_id = $1`, [userId])).rows[0]?.head ?? 0);
    // Sizes first (octet_length reads no body), so a page of large messages is
    // cut at the byte budget before any body leaves the database.
    const sized = await this.db.query<{ pos: unknown; bytes: unknown }>(
      `SELECT l.pos, coalesce(octet_length(l.event), 0) + coalesce(octet_length(m.body), 0) AS bytes
         FROM sync_log l LEFT JOIN messages m ON m.conversation_id = l.conversation_id AND m.seq = l.seq
        WHERE l.user_id = $1 AND l.pos > $2 ORDER BY l.pos LIMIT $3`,
      [userId, afterPos, limit],
    );
    const continuous = logContinuity(afterPos, head, sized.rows.map((r) => num(r.pos)));
    if ("trimmedTo" in continuous) return { events: [], head, more: true, trimmedTo: continuous.trimmedTo };
    const take = fitBytes(sized.rows.slice(0, continuous.take).map((r) => num(r.bytes) + ITEM_OVERHEAD_BYTES), maxBytes);
    const lastPos = take > 0 ? num(sized.rows[take - 1]!.pos) : afterPos;
    const { rows } = take === 0 ? { rows: [] } : await this.db.query<MessageRow & { pos: unknown; at: unknown; event: Uint8Array | null; log_conversation_id: string; log_seq: unknown }>(
      `SELECT l.pos, l.at, l.event, l.conversation_id AS log_conversation_id, l.seq AS log_seq, m.*
         FROM sync_log l LEFT JOIN messages m ON l.event IS NULL AND m.conversation_id = l.conversation_id AND m.seq = l.seq
        WHERE l.user_id = $1 AND l.pos > $2 AND l.pos <= $3 ORDER BY l.pos`,
      [userId, afterPos, lastPos],
    );
    const events = rows.map((r): Event => {
      if (r.event) return { ...Event.decode(r.event), pos: num(r.pos) };
      return { pos: num(r.pos), atMs: num(r.at), kind: { $case: "message", value: toMessage(r) } };
    });
    await fillEditedTexts(events, (c, seqs) => this.texts(c, seqs));
    // Unset rather than false at the end of the log: a page there reads as before.
    return { events, head, more: take < sized.rows.length || sized.rows.length === limit || undefined };
  }

  async trimLog(beforeMs: number): Promise<number> {
    // A batch per statement (oldest first, by sync_log_by_at): short row locks, never one huge delete.
    let total = 0;
    for (;;) {
      const { rowCount } = await this.db.query(
        `DELETE FROM sync_log WHERE (user_id, pos) IN (SELECT user_id, pos FROM sync_log WHERE at < $1 ORDER BY at LIMIT $2)`,
        [beforeMs, TRIM_BATCH],
      );
      total += rowCount;
      if (rowCount < TRIM_BATCH) return total;
    }
  }

  async logHeads(userIds: string[]): Promise<number[]> {
    if (userIds.length === 0) return [];
    const { rows } = await this.db.query<{ user_id: string; head: unknown }>(`SELECT user_id, head FROM log_heads WHERE user_id = ANY($1::text[])`, [userIds]);
    const heads = new Map(rows.map((r) => [r.user_id, num(r.head)]));
    return userIds.map((u) => heads.get(u) ?? 0);
  }

  async history(userId: string, req: HistoryRequest, maxBytes = PAGE_MAX_BYTES): Promise<HistoryPage> {
    await this.requireMember(req.conversationId, userId);
    const limit = historyLimit(req.limit);
    const forward = req.direction === HistoryDirection.HISTORY_DIRECTION_FORWARD;
    const from = req.fromSeq;
    // Sizes first, as in readLog: the page is cut at the byte budget before bodies are read.
    // What the user deleted for themselves is not in their pages.
    const visible = `NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $4 AND h.conversation_id = messages.conversation_id AND h.seq = messages.seq)`;
    const { rows: sized } = forward
      ? await this.db.query<{ seq: unknown; bytes: unknown }>(
          `SELECT seq, octet_length(body) AS bytes FROM messages WHERE conversation_id = $1 AND seq > $2 AND ${visible} ORDER BY seq ASC LIMIT $3`,
          [req.conversationId, from, limit + 1, userId],
        )
      : await this.db.query<{ seq: unknown; bytes: unknown }>(
          `SELECT seq, octet_length(body) AS bytes FROM messages WHERE conversation_id = $1 AND ($2::bigint = 0 OR seq < $2::bigint) AND ${visible} ORDER BY seq DESC LIMIT $3`,
          [req.conversationId, from, limit + 1, userId],
        );
    const take = fitBytes(sized.slice(0, limit).map((r) => num(r.bytes) + ITEM_OVERHEAD_BYTES), maxBytes);
    const hasMore = sized.length > take;
    if (take === 0) return { conversationId: req.conversationId, messages: [], hasMore, nextFromSeq: from };
    const seqs = sized.slice(0, take).map((r) => num(r.seq));
    const { rows } = await this.db.query<MessageRow>(
      `SELECT * FROM messages WHERE conversation_id = $1 AND seq = ANY($2::bigint[]) ORDER BY seq ${forward ? "ASC" : "DESC"}`,
      [req.conversationId, seqs],
    );
    const messages = rows.map(toMessage);
    const last = messages[messages.length - 1];
    return { conversationId: req.conversationId, messages, hasMore, nextFromSeq: last ? last.seq : from };
  }

  async updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number) {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ delivered_seq: unknown; read_seq: unknown; last_seq: unknown }>(
        `SELECT m.delivered_seq, m.read_seq, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
          WHERE m.conversation_id = $1 AND m.user_id = $2 FOR UPDATE OF m`,
        [conversationId, userId],
      );
      const row = rows[0];
      if (!row) throw ChatError.denied();
      const { deliveredSeq: delivered, readSeq: read, changed, readMoved } = movePointers({ delivered: num(row.delivered_seq), read: num(row.read_seq), last: num(row.last_seq) }, deliveredSeq, readSeq);
      if (!changed) return { deliveredSeq: delivered, readSeq: read, changed };
      await tx.query(`UPDATE members SET delivered_seq = $3, read_seq = $4 WHERE conversation_id = $1 AND user_id = $2`, [conversationId, userId, delivered, read]);
      let readEvent: Event | undefined;
      if (readMoved) {
        const marker: Event = { pos: 0, atMs: Date.now(), kind: { $case: "read", value: { conversationId, readSeq: read } } };
        readEvent = (await this.appendLog(tx, [{ userId, conversationId, seq: 0, event: marker }]))[0]!.event;
      }
      return { deliveredSeq: delivered, readSeq: read, changed, readEvent };
    });
  }

  async changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]> {
    return this.db.transaction(async (tx) => {
      // The conversation row lock serialises changes of its messages with its appends.
      const conv = (await tx.query<{ kind: number; created_by: string }>(`SELECT kind, created_by FROM conversations WHERE id = $1 FOR UPDATE`, [req.conversationId])).rows[0];
      const members = (await tx.query<{ user_id: string }>(`SELECT user_id FROM members WHERE conversation_id = $1`, [req.conversationId])).rows.map((r) => r.user_id);
      const row = (await tx.query<{ sender_id: string; sent_at: unknown; edit_count: unknown; deleted_at: unknown }>(
        `SELECT sender_id, sent_at, edit_count, deleted_at FROM messages WHERE conversation_id = $1 AND seq = $2`, [req.conversationId, req.seq])).rows[0];
      const plan = planMessageChange(req, row && { senderId: row.sender_id, sentAtMs: num(row.sent_at), editCount: num(row.edit_count), deleted: num(row.deleted_at) > 0 }, conv && { kind: conv.kind, createdBy: conv.created_by }, members);
      if (plan.editCount !== undefined) {
        await tx.query(`UPDATE messages SET body = $3, edited_at = $4, edit_count = $5 WHERE conversation_id = $1 AND seq = $2`, [req.conversationId, req.seq, req.text, req.atMs, plan.editCount]);
      }
      // The tombstone: the text is gone from the only table that held it (log entries refer to the row).
      if (plan.deleteForEveryone) await tx.query(`UPDATE messages SET body = '', deleted_at = $3 WHERE conversation_id = $1 AND seq = $2`, [req.conversationId, req.seq, req.atMs]);
      if (plan.hide) await tx.query(`INSERT INTO hidden_messages (user_id, conversation_id, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [req.actorId, req.conversationId, req.seq]);
      const logged = await this.appendLog(tx, plan.recipients.map((userId) => ({ userId, conversationId: req.conversationId, seq: req.seq, event: plan.stored })));
      return liveEvents(logged, plan.live);
    });
  }

  async hiddenSeqs(userId: string, conversationId: string): Promise<number[]> {
    const { rows } = await this.db.query<{ seq: unknown }>(`SELECT seq FROM hidden_messages WHERE user_id = $1 AND conversation_id = $2 ORDER BY seq`, [userId, conversationId]);
    return rows.map((r) => num(r.seq));
  }

  async sentMessages(conversationId: string, senderId: string): Promise<number[]> {
    // The (conversation_id, sender_id, client_msg_id) index finds them without reading the others.
    const { rows } = await this.db.query<{ seq: unknown }>(`SELECT seq FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND deleted_at = 0 ORDER BY seq`, [conversationId, senderId]);
    return rows.map((r) => num(r.seq));
  }

  private async texts(conversationId: string, seqs: number[]): Promise<Map<number, string>> {
    const { rows } = await this.db.query<{ seq: unknown; body: string }>(`SELECT seq, body FROM messages WHERE conversation_id = $1 AND seq = ANY($2::bigint[])`, [conversationId, seqs]);
    return new Map(rows.map((r) => [num(r.seq), r.body]));
  }

  updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
    // Separate transactions: one batch locking many members' rows in one would deadlock with another's.
    return updateEachPointer(this, updates);
  }

  async close(): Promise<void> {
    await this.reads.close();
    await this.db.close();
  }

  private async requireMember(conversationId: string, userId: string): Promise<void> {
    if (!(await this.isMember(conversationId, userId))) throw ChatError.denied();
  }

  /** The conversation's member ids (none for an unknown one). */
  async memberIds(conversationId: string): Promise<string[]> {
    const { rows } = await this.db.query<{ user_id: string }>(`SELECT user_id FROM members WHERE conversation_id = $1`, [conversationId]);
    return rows.map((r) => r.user_id);
  }

  async isMember(conversationId: string, userId: string): Promise<boolean> {
    const { rows } = await this.db.query(`SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2`, [conversationId, userId]);
    return rows.length > 0;
  }

  async conversationExists(conversationId: string): Promise<boolean> {
    const { rows } = await this.db.query(`SELECT 1 FROM conversations WHERE id = $1`, [conversationId]);
    return rows.length > 0;
  }

  /** The conversation's kind, creator and member ids (undefined if it does not exist). */
  async conversationRow(conversationId: string): Promise<{ kind: number; createdBy: string; members: string[] } | undefined> {
    const conv = (await this.db.query<{ kind: number; created_by: string }>(`SELECT kind, created_by FROM conversations WHERE id = $1`, [conversationId])).rows[0];
    if (!conv) return undefined;
    const members = (await this.db.query<{ user_id: string }>(`SELECT user_id FROM members WHERE conversation_id = $1`, [conversationId])).rows.map((r) => r.user_id);
    return { kind: conv.kind, createdBy: conv.created_by, members };
  }

  /** Ids of the conversations the user is a member of. */
  async conversationIdsOf(userId: string): Promise<string[]> {
    const { rows } = await this.db.query<{ conversation_id: string }>(`SELECT conversation_id FROM members WHERE user_id = $1`, [userId]);
    return rows.map((r) => r.conversation_id);
  }

  /** Appends entries to users' logs at the next positions; heads are locked in user-id order. */
  private async appendLog(tx: SqlExecutor, writes: LogWrite[]): Promise<UserEvent[]> {
    if (writes.length === 0) return [];
    const counts = new Map<string, number>();
    for (const w of writes) counts.set(w.userId, (counts.get(w.userId) ?? 0) + 1);
    const users = [...counts.keys()].sort();
    await tx.query(`INSERT INTO log_heads (user_id, head) SELECT u, 0 FROM unnest($1::text[]) AS u ON CONFLICT DO NOTHING`, [users]);
    const { rows } = await tx.query<{ user_id: string; head: unknown }>(`SELECT user_id, head FROM log_heads WHERE user_id = ANY($1::text[]) ORDER BY user_id FOR UPDATE`, [users]);
    const next = new Map(rows.map((r) => [r.user_id, num(r.head)]));
    const at = Date.now();
    const out: UserEvent[] = [];
    const cols: { user: string[]; pos: number[]; conv: string[]; seq: number[]; event: Array<Uint8Array | null> } = { user: [], pos: [], conv: [], seq: [], event: [] };
    for (const w of writes) {
      const pos = next.get(w.userId)! + 1;
      next.set(w.userId, pos);
      const event: Event = w.event ? { ...w.event, pos, atMs: w.event.atMs || at } : { pos, atMs: at, kind: undefined };
      out.push({ userId: w.userId, event });
      cols.user.push(w.userId);
      cols.pos.push(pos);
      cols.conv.push(w.conversationId);
      cols.seq.push(w.seq);
      cols.event.push(w.event ? Event.encode({ ...event, pos: 0 }).finish() : null);
    }
    await tx.query(`UPDATE log_heads SET head = d.head FROM unnest($1::text[], $2::bigint[]) AS d(u, head) WHERE log_heads.user_id = d.u`, [users, users.map((u) => next.get(u)!)]);
    await tx.query(
      `INSERT INTO sync_log (user_id, pos, at, conversation_id, seq, event) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bytea[])`,
      [cols.user, cols.pos, cols.pos.map(() => at), cols.conv, cols.seq, cols.event],
    );
    return out;
  }

  private async loadConversation(db: SqlExecutor, id: string): Promise<Conversation | null> {
    const { rows } = await db.query<ConversationRow>(`SELECT id, kind, title, created_at, last_seq FROM conversations WHERE id = $1`, [id]);
    const c = rows[0];
    if (!c) return null;
    return conversationOf(c, (await this.membersOf(db, [id])).get(id) ?? []);
  }

  /** The members of each of the conversations, in the order they joined (one query). */
  private async membersOf(db: SqlExecutor, conversationIds: string[]): Promise<Map<string, Member[]>> {
    const { rows } = await db.query<{ conversation_id: string; user_id: string; username: string; delivered_seq: unknown; read_seq: unknown; deleted_at: unknown }>(
      `SELECT m.conversation_id, m.user_id, u.username, m.delivered_seq, m.read_seq, u.deleted_at
         FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = ANY($1::text[]) ORDER BY m.conversation_id, m.joined_at, m.user_id`,
      [conversationIds],
    );
    const byConversation = new Map<string, Member[]>();
    for (const m of rows) {
      let list = byConversation.get(m.conversation_id);
      if (!list) byConversation.set(m.conversation_id, (list = []));
      list.push(memberOf(m.user_id, m.username, num(m.delivered_seq), num(m.read_seq), num(m.deleted_at)));
    }
    return byConversation;
  }
}

/** A conversations row, as both loadConversation and listConversations read it. */
interface ConversationRow { id: string; kind: unknown; title: string; created_at: unknown; last_seq: unknown }

function conversationOf(r: ConversationRow, members: Member[]): Conversation {
  return Conversation.create({ id: r.id, kind: num(r.kind) as ConversationKind, title: r.title, createdAtMs: num(r.created_at), lastSeq: num(r.last_seq), members });
}
