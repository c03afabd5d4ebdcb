import type { RouteVersions } from "../routes/route-versions.js";
import type { AppendGroup, AppendGroupResult, ChangeMessageRequest, User, UserEvent } from "../../gen/chat/internal/v1/store.js";
import { type Conversation, ErrorCode, type Event, type HistoryPage, type HistoryRequest, type MembershipAction } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { BlockStore } from "./blocks.js";
import type { PrivacyStore } from "./privacy.js";
import type { SessionStore } from "./sessions.js";

const HISTORY_MAX = 200;
const HISTORY_DEFAULT = 50;

/** The page size a history request gets: its limit, 50 when unset, at most 200 (one rule for every backend). */
export function historyLimit(requested: number): number {
  return Math.min(Math.max(requested || HISTORY_DEFAULT, 1), HISTORY_MAX);
}

/**
 * How many of `sizes` (bytes of consecutive items, in page order) one page
 * takes: as many as fit in `maxBytes`, but always the first, so a reader whose
 * next item alone is larger than the budget still gets it and moves on.
 */
export function fitBytes(sizes: number[], maxBytes: number): number {
  let total = 0;
  for (let i = 0; i < sizes.length; i++) {
    total += sizes[i]!;
    if (i > 0 && total > maxBytes) return i;
  }
  return sizes.length;
}

/**
 * A page of a user's sync log. `more` is true when the page stopped at its
 * count or byte bound (events may follow it); a page that reached the end of
 * the log leaves it unset.
 */
export interface LogPage {
  events: Event[];
  head: number;
  more?: boolean;
  /** Positions after the asked one up to here are trimmed (the page then holds no events); see logContinuity. */
  trimmedTo?: number;
}

/** Sync-log entries one trim statement deletes (trimLog): a short transaction, repeated until none are old. */
export const TRIM_BATCH = 5_000;

/**
 * What a page read after `afterPos` may hand out, from the positions its rows hold (ascending).
 * Every position up to the log's head was written (a position is committed with its row), and
 * nothing deletes a row but the trim (docs/sync-log-trim.md), so a missing position was
 * trimmed. `head` must be read before the rows: a position it counts is then one the rows must
 * hold. A missing prefix is answered alone (`trimmedTo`, no events); a hole further on cuts the
 * page before it (`take`), so the next read starts at the hole and reports it.
 */
export function logContinuity(afterPos: number, head: number, positions: readonly number[]): { trimmedTo: number } | { take: number } {
  const first = positions[0];
  if (first === undefined) return afterPos < head ? { trimmedTo: head } : { take: 0 };
  if (first > afterPos + 1) return { trimmedTo: first - 1 };
  for (let i = 1; i < positions.length; i++) if (positions[i] !== positions[i - 1]! + 1) return { take: i };
  return { take: positions.length };
}

export interface PointerUpdate {
  conversationId: string;
  userId: string;
  deliveredSeq: number;
  readSeq: number;
}

export interface PointerResult {
  deliveredSeq: number;
  readSeq: number;
  changed: boolean;
  readEvent?: Event;
}

/** A pointer move's outcome: the pointers, or the domain error that refused it. */
export type PointerMoveResult = { pointers: PointerResult; error?: undefined } | { error: ErrorCode; pointers?: undefined };

/**
 * updatePointersBatch for a store whose moves are separate writes: each one on its
 * own, concurrently. Domain refusals are answered per move; a backend failure
 * (UNAVAILABLE) fails the call, as it would have failed every move.
 */
export async function updateEachPointer(store: Pick<Store, "updatePointers">, updates: PointerUpdate[]): Promise<PointerMoveResult[]> {
  return Promise.all(updates.map(async (u): Promise<PointerMoveResult> => {
    try {
      return { pointers: await store.updatePointers(u.conversationId, u.userId, u.deliveredSeq, u.readSeq) };
    } catch (err) {
      if (err instanceof ChatError && err.code !== ErrorCode.ERROR_CODE_UNAVAILABLE) return { error: err.code };
      throw err;
    }
  }));
}

/**
 * Who exists and who is in what: users, their log-in sessions, privacy settings and blocks,
 * conversations and their members. Always SQL (SQLite embedded, PostgreSQL in production);
 * its conversation lists may run on standbys (directory-reads.ts).
 */
export interface Directory extends SessionStore, PrivacyStore, BlockStore {
  createUser(user: User): Promise<void>;
  getUserByName(username: string): Promise<User | null>;
  getUsers(ids: string[]): Promise<User[]>;

  /** Creates a conversation with its members; a direct one that exists is returned as is. Its membership events reach the members' logs exactly once. */
  createConversation(conversation: Conversation, createdBy: string, maxMembers: number): Promise<{ conversation: Conversation; created: boolean; events: UserEvent[] }>;
  getConversation(id: string): Promise<{ conversation: Conversation; mutedUserIds: string[] } | null>;
  changeMembership(req: { conversationId: string; actorId: string; subjectId: string; action: MembershipAction; maxMembers: number }): Promise<{ conversation: Conversation; events: UserEvent[] }>;
  listConversations(userId: string): Promise<Conversation[]>;
  /** Groups (not direct conversations) the user created at or after `sinceMs`: chat's per-day quota. */
  groupsCreatedSince(userId: string, sinceMs: number): Promise<number>;
  /** Ids of everyone who shares a conversation with the user, the user included (one query, however many conversations). */
  contactIds(userId: string): Promise<string[]>;
  isMember(conversationId: string, userId: string): Promise<boolean>;
  setMuted(conversationId: string, userId: string, muted: boolean): Promise<void>;
}

/**
 * What was said and who has seen it: each conversation's messages numbered by seq, each
 * user's sync log numbered by position, the delivered and read pointers, history. SQLite
 * embedded; Cassandra (or PostgreSQL) in production.
 */
export interface MessageLog {
  /** Appends each group in one durable write; a group whose base_seq is stale is refused alone. */
  append(groups: AppendGroup[]): Promise<AppendGroupResult[]>;
  lastSeq(conversationId: string): Promise<number>;
  /** At most `limit` events and about `maxBytes` (default PAGE_MAX_BYTES) of them, never none while events follow. */
  readLog(userId: string, afterPos: number, limit: number, maxBytes?: number): Promise<LogPage>;
  /**
   * Deletes sync-log entries written before `beforeMs` (a batch at a time) and answers how many
   * went. Absent where entries expire by themselves (Cassandra writes them with a TTL).
   * docs/sync-log-trim.md.
   */
  trimLog?(beforeMs: number): Promise<number>;
  /**
   * Present where one process commits every write of this log (SQLite; the Cassandra log's
   * leader): route versions that chat's route cache is kept exact by. Absent where several
   * processes serve one log (PostgreSQL): chat then looks routes up for every delivery.
   */
  readonly routeVersions?: RouteVersions;
  /** Each user's log head (0 if empty), in order. May trail a write that is still in flight. */
  logHeads(userIds: string[]): Promise<number[]>;
  /** A page of historyLimit(req.limit) messages at most, cut at `maxBytes` (default PAGE_MAX_BYTES) but never empty while messages follow. */
  history(userId: string, req: HistoryRequest, maxBytes?: number): Promise<HistoryPage>;
  updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number): Promise<PointerResult>;
  /** Many pointer moves, each answered on its own (in order): a refused one (a non-member's) fails no other. */
  updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]>;

  /**
   * Edits or deletes one message (store-rules.ts planMessageChange says who may) and appends
   * the event to the logs of whom it concerns: every member, or the actor alone for a delete
   * for me. A delete for everyone removes the text from every table (the message row keeps
   * its seq as a tombstone). Returns the events as sent live (an edit's with its text).
   */
  changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]>;
  /** Seqs of the conversation's messages the user deleted for themselves (history leaves them out). */
  hiddenSeqs(userId: string, conversationId: string): Promise<number[]>;
  /** Seqs of the sender's messages in the conversation not deleted for everyone, ascending (an account's erasure). */
  sentMessages(conversationId: string, senderId: string): Promise<number[]>;
}

/**
 * Everything the message-store service keeps durably: its directory and its message log, one
 * backend each, served by one gRPC API. One implementation per backend: store-sqlite.ts
 * (embedded), store-sql.ts (PostgreSQL, or PGlite) and store-cassandra.ts (PostgreSQL
 * directory, Cassandra log). The two meet where an operation is both: a membership change
 * is a directory write whose events the log must carry exactly once (in the same transaction
 * on SQL; through an outbox on Cassandra), and a conversation's snapshot carries the log's
 * last seq and pointers. Errors are ChatErrors with domain codes; backend failures surface as
 * UNAVAILABLE.
 */
export interface Store extends Directory, MessageLog {
  close(): Promise<void>;
}
