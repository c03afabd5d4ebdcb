import type { AppendGroup, AppendGroupResult, AppendedMessage, ChangeMessageRequest, UserEvent } from "../../gen/chat/internal/v1/store.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { type Conversation, ConversationKind, ErrorCode, type Event, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { num } from "./sql.js";

/**
 * The rules every SQL-shaped store applies the same way (store-sql.ts on
 * PostgreSQL, store-sqlite.ts): what a row means and what a change may do. The
 * stores only read and write; the decisions are here, once.
 */

/** A row of the messages table, as either driver returns it. */
export interface MessageRow {
  conversation_id: string;
  seq: unknown;
  sender_id: string;
  sender_device_id: string;
  client_msg_id: string;
  body: string;
  sent_at: unknown;
  /** 0 until edited / deleted (migration 2). */
  edited_at?: unknown;
  deleted_at?: unknown;
  /** 0 unless a reply (migration 3). */
  reply_to_seq?: unknown;
}

/** A member as every directory answers it: a deleted account keeps its place with no name. */
export function memberOf(userId: string, username: string, deliveredSeq: number, readSeq: number, deletedAtMs: number): Member {
  return deletedAtMs > 0
    ? Member.create({ userId, username: "", deliveredSeq, readSeq, accountDeleted: true })
    : Member.create({ userId, username, deliveredSeq, readSeq });
}

export function toMessage(r: MessageRow): Message {
  return {
    conversationId: r.conversation_id,
    seq: num(r.seq),
    senderId: r.sender_id,
    senderDeviceId: r.sender_device_id,
    clientMsgId: r.client_msg_id,
    text: r.body,
    sentAtMs: num(r.sent_at),
    editedAtMs: num(r.edited_at ?? 0),
    deleted: num(r.deleted_at ?? 0) > 0,
    replyToSeq: num(r.reply_to_seq ?? 0) || undefined,
  };
}

/** What the store knows of a message when it is edited or deleted. */
export interface MessageState {
  senderId: string;
  sentAtMs: number;
  editCount: number;
  deleted: boolean;
}

/**
 * What an edit or a deletion does, once allowed: who hears of it, the event their
 * logs keep (an edit's without its text: the text lives only in the message row, so a
 * later delete for everyone leaves no earlier version anywhere), the event sent live,
 * and the change to the message row or to the actor's hidden set. Throws the typed
 * refusal otherwise (nothing is written then).
 */
export function planMessageChange(
  req: ChangeMessageRequest,
  msg: MessageState | undefined,
  conversation: { kind: unknown; createdBy: string } | undefined,
  members: string[],
): { recipients: string[]; stored: Event; live: Event; editCount?: number; deleteForEveryone?: boolean; hide?: boolean } {
  if (!conversation || !members.includes(req.actorId)) throw ChatError.denied();
  if (!msg) throw ChatError.notFound(`no message ${req.seq} in this conversation`);
  const at = req.atMs;
  const ref = { conversationId: req.conversationId, seq: req.seq };
  if (req.edit) {
    if (msg.senderId !== req.actorId) throw new ChatError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "only its sender can edit a message");
    if (msg.deleted) throw new ChatError(ErrorCode.ERROR_CODE_MESSAGE_DELETED, "the message was deleted");
    if (at - msg.sentAtMs > req.editWindowMs) throw new ChatError(ErrorCode.ERROR_CODE_WINDOW_CLOSED, `a message can be edited for ${Math.round(req.editWindowMs / 1000)} s after it was sent`);
    if (msg.editCount >= req.maxEdits) throw new ChatError(ErrorCode.ERROR_CODE_WINDOW_CLOSED, `a message can be edited at most ${req.maxEdits} times`);
    const live: Event = { pos: 0, atMs: at, kind: { $case: "edited", value: { ...ref, text: req.text, editedAtMs: at } } };
    const stored: Event = { pos: 0, atMs: at, kind: { $case: "edited", value: { ...ref, text: "", editedAtMs: at } } };
    return { recipients: members, stored, live, editCount: msg.editCount + 1 };
  }
  const deleted: Event = { pos: 0, atMs: at, kind: { $case: "deleted", value: { ...ref, forEveryone: req.forEveryone, actorId: req.actorId } } };
  if (!req.forEveryone) return { recipients: [req.actorId], stored: deleted, live: deleted, hide: true };
  if (msg.deleted) throw new ChatError(ErrorCode.ERROR_CODE_MESSAGE_DELETED, "the message was already deleted for everyone");
  const groupCreator = num(conversation.kind) === ConversationKind.CONVERSATION_KIND_GROUP && conversation.createdBy === req.actorId;
  if (!groupCreator) {
    if (msg.senderId !== req.actorId) throw new ChatError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "only its sender (or a group's creator) can delete a message for everyone");
    if (at - msg.sentAtMs > req.deleteWindowMs) throw new ChatError(ErrorCode.ERROR_CODE_WINDOW_CLOSED, `a message can be deleted for everyone for ${Math.round(req.deleteWindowMs / 1000)} s after it was sent`);
  }
  return { recipients: members, stored: deleted, live: deleted, deleteForEveryone: true };
}

/** The log events a change returns: the live event at each recipient's new position. */
export function liveEvents(logged: UserEvent[], live: Event): UserEvent[] {
  return logged.map((e) => ({ userId: e.userId, event: { ...live, pos: e.event!.pos, atMs: e.event!.atMs } }));
}

/**
 * Edit events are logged without their text: a page of the log gets each one's text
 * from the message as it is now (the latest text, or "" once deleted for everyone).
 */
export async function fillEditedTexts(events: Event[], textsOf: (conversationId: string, seqs: number[]) => Promise<Map<number, string>>): Promise<void> {
  const wanted = new Map<string, number[]>();
  for (const e of events) if (e.kind?.$case === "edited") wanted.set(e.kind.value.conversationId, [...(wanted.get(e.kind.value.conversationId) ?? []), e.kind.value.seq]);
  if (wanted.size === 0) return;
  const texts = new Map<string, Map<number, string>>();
  await Promise.all([...wanted].map(async ([c, seqs]) => texts.set(c, await textsOf(c, seqs))));
  for (const e of events) if (e.kind?.$case === "edited") e.kind.value.text = texts.get(e.kind.value.conversationId)?.get(e.kind.value.seq) ?? "";
}

/** A log entry to write: either a message reference or a whole encoded event. */
export interface LogWrite {
  userId: string;
  conversationId: string;
  seq: number;
  event: Event | null;
}

export function membershipEvent(conversation: Conversation, action: MembershipAction, actorId: string, subjectId: string, at: number): Event {
  return { pos: 0, atMs: at, kind: { $case: "membership", value: { conversationId: conversation.id, action, actorId, subjectId, conversation } } };
}

export interface MembershipRequest {
  conversationId: string;
  actorId: string;
  subjectId: string;
  action: MembershipAction;
  maxMembers: number;
}

/**
 * What a membership change does to a conversation (`row`, undefined if it does
 * not exist) with `members`: the member to add or remove and who hears of it.
 * Throws the typed refusal otherwise.
 */
export function planMembershipChange(
  req: MembershipRequest,
  row: { kind: unknown; createdBy: string } | undefined,
  members: string[],
): { add?: string; remove?: string; recipients: string[] } {
  // A non-member learns nothing, not even whether the conversation exists.
  if (!row || !members.includes(req.actorId)) throw ChatError.denied();
  if (num(row.kind) !== ConversationKind.CONVERSATION_KIND_GROUP) throw ChatError.invalid("members of a direct conversation cannot change");
  switch (req.action) {
    case MembershipAction.MEMBERSHIP_ACTION_ADDED:
      if (members.includes(req.subjectId)) throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_EXISTS, "already a member");
      if (members.length >= req.maxMembers) throw new ChatError(ErrorCode.ERROR_CODE_GROUP_FULL, `a group has at most ${req.maxMembers} members`);
      return { add: req.subjectId, recipients: [...members, req.subjectId] };
    case MembershipAction.MEMBERSHIP_ACTION_REMOVED:
    case MembershipAction.MEMBERSHIP_ACTION_LEFT:
      if (!members.includes(req.subjectId)) throw ChatError.notFound("not a member");
      if (req.subjectId !== req.actorId && row.createdBy !== req.actorId) throw new ChatError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "only the group's creator can remove others");
      return { remove: req.subjectId, recipients: members };
    default:
      throw ChatError.invalid("unknown membership action");
  }
}

/** Pointers never pass the last message nor move back; reading implies delivery. */
export function movePointers(stored: { delivered: number; read: number; last: number }, deliveredSeq: number, readSeq: number) {
  const read = Math.max(stored.read, Math.min(readSeq, stored.last));
  const delivered = Math.max(stored.delivered, Math.min(deliveredSeq, stored.last), read);
  return { deliveredSeq: delivered, readSeq: read, changed: read !== stored.read || delivered !== stored.delivered, readMoved: read !== stored.read };
}

/** The messages one group of an append adds, with the entries its result reports them by. */
export interface FreshGroup {
  group: AppendGroup;
  result: AppendGroupResult;
  appended: AppendedMessage[];
}

/**
 * Numbers the messages of an append: each group gets the next seqs after its
 * conversation's head, unless the head is missing (NOT_FOUND) or moved since
 * the owner read it (CONFLICT: it reloads and retries); a message already
 * stored, or earlier in the batch, under its sender and client_msg_id is
 * reported as the original. `headOf` and `stored` read the store inside the
 * caller's transaction; the heads move as groups are numbered.
 */
export function numberAppend(
  groups: AppendGroup[],
  headOf: (conversationId: string) => number | undefined,
  stored: (conversationId: string, senderId: string, clientMsgId: string) => Message | undefined,
): { results: AppendGroupResult[]; fresh: FreshGroup[] } {
  const heads = new Map<string, number | undefined>();
  const known = new Map<string, Message>();
  const results: AppendGroupResult[] = [];
  const fresh: FreshGroup[] = [];
  for (const group of groups) {
    const result: AppendGroupResult = { conversationId: group.conversationId, error: ErrorCode.ERROR_CODE_UNSPECIFIED, messages: [], lastSeq: 0, routeEpoch: 0, routeVersions: [] };
    results.push(result);
    if (!heads.has(group.conversationId)) heads.set(group.conversationId, headOf(group.conversationId));
    const lastSeq = heads.get(group.conversationId);
    if (lastSeq === undefined) { result.error = ErrorCode.ERROR_CODE_NOT_FOUND; continue; }
    result.lastSeq = lastSeq;
    if (lastSeq !== group.baseSeq) { result.error = ErrorCode.ERROR_CODE_CONFLICT; continue; }
    let seq = lastSeq;
    const appended: AppendedMessage[] = [];
    for (const m of group.messages) {
      const key = `${group.conversationId}\u0000${m.senderId}\u0000${m.clientMsgId}`;
      const dup = known.get(key) ?? stored(group.conversationId, m.senderId, m.clientMsgId);
      if (dup) { result.messages.push({ message: dup, duplicate: true, positions: [] }); continue; }
      const message: Message = { conversationId: group.conversationId, seq: ++seq, senderId: m.senderId, senderDeviceId: m.senderDeviceId, clientMsgId: m.clientMsgId, text: m.text, sentAtMs: m.sentAtMs, editedAtMs: 0, deleted: false, replyToSeq: m.replyToSeq || undefined };
      known.set(key, message);
      const entry: AppendedMessage = { message, duplicate: false, positions: [] };
      result.messages.push(entry);
      appended.push(entry);
    }
    result.lastSeq = seq;
    heads.set(group.conversationId, seq);
    if (appended.length > 0) fresh.push({ group, result, appended });
  }
  return { results, fresh };
}

/** One sync-log entry per member per appended message, in order; `placeLogged` puts the positions back. */
export function memberLogWrites(fresh: FreshGroup[]): LogWrite[] {
  const writes: LogWrite[] = [];
  for (const f of fresh) for (const a of f.appended) for (const userId of f.group.memberIds) writes.push({ userId, conversationId: a.message!.conversationId, seq: a.message!.seq, event: null });
  return writes;
}

export function placeLogged(fresh: FreshGroup[], logged: UserEvent[]): void {
  let i = 0;
  for (const f of fresh) for (const a of f.appended) for (let k = 0; k < f.group.memberIds.length; k++) a.positions.push(logged[i++]!.event!.pos);
}
