import { randomUUID } from "node:crypto";
import { ChatServiceService, type Actor } from "../../gen/chat/internal/v1/chat.js";
import type { ChangeMessageRequest, MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { AckKind, Conversation, ConversationKind, ErrorCode, Member, MembershipAction, type PrivacySettings, type Receipt } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { trace, type SpanContext } from "@opentelemetry/api";
import { MessageTraces } from "../telemetry/message-traces.js";
import { linksTo, messageAttributes, startSendSpan } from "../telemetry/messaging.js";
import { ChatMetrics } from "../telemetry/telemetry.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import type { Logger } from "../log/logger.js";
import { validateConversationId, validateMessageRef, validateSend, validateText, validateTitle, validateUsername } from "../validation/validate.js";
import { BlockRules } from "./blocks.js";
import { ConversationDirectory, DEFAULT_CACHE_SIZE } from "./directory.js";
import { LocalSignals, type DirectoryChange, type DirectorySignals } from "./directory-signals.js";
import type { Fanout } from "./fanout.js";
import { PointerBatcher } from "./pointer-batcher.js";
import { PresenceAccess } from "./presence-access.js";
import { PrivacyRules } from "./privacy.js";
import { ReceiptAudience } from "./receipt-audience.js";
import { GroupQuota } from "./quotas.js";
import { Sequencer } from "./sequencer.js";

export interface ChatConfig {
  /** MAX_GROUP_MEMBERS: the 101st add is refused with GROUP_FULL. Default 100. */
  maxGroupMembers: number;
  /** MAX_TEXT_LENGTH: in Unicode code points. Default 100000. */
  maxTextLength: number;
  /** RECEIPT_FLUSH_MS: receipts are coalesced per conversation for this long. Default 100. */
  receiptFlushMs: number;
  /**
   * STORE_WRITES_IN_FLIGHT: concurrent batch writes to the store. Default 1 on the
   * embedded profile (while one write is in flight the next batch gathers: group commit,
   * which a store that runs one transaction at a time wants), 8 on production.
   */
  storeWritesInFlight: number;
  /**
   * EDIT_WINDOW_S: a message can be edited this long after it was sent. Default 86400 (a day):
   * long enough to fix a typo noticed the next morning, short enough that old history stays put.
   */
  editWindowS: number;
  /** MAX_EDITS_PER_MESSAGE: edits of one message. Default 10. */
  maxEditsPerMessage: number;
  /**
   * DELETE_WINDOW_S: a sender can delete a message for everyone this long after sending it (a
   * group's creator any message, any time; delete for me has no limit). Default 172800 (two days).
   */
  deleteWindowS: number;
  /** CHAT_CONVERSATION_CACHE: conversations (members, mutes) kept in memory, least recently used evicted. Default 100000. */
  conversationCacheSize?: number;
  /** MAX_GROUPS_PER_DAY: groups one user may create in 24 h; past it CreateGroup is QUOTA_EXCEEDED. Default 50; 0 = no cap. */
  maxGroupsPerDay?: number;
  /**
   * CONTACTS_CACHE_MS: how long a user's contacts (for presence access) are used without asking
   * the store. Changes made through chat reach every instance's cache at once (directory signals);
   * this bounds what a lost signal can delay (a removal, a newly hidden user). Default 30000.
   */
  contactsCacheMs?: number;
  /**
   * SEND_QUEUE_BYTES_PER_SENDER / SEND_QUEUE_BYTES: bytes of sends that may wait for a store
   * write, per sender and in all, in one chat instance (defaults 8 MiB and 256 MiB); past them a
   * send is refused RATE_LIMITED with retry_after_ms rather than queued without bound.
   */
  maxQueuedBytesPerSender?: number;
  maxQueuedBytes?: number;
}

/** Deletions for everyone of an erased account in flight at once: its messages go in rounds, not all at once. */
const ERASE_IN_FLIGHT = 8;

/** Conversations, sequencing and fan-out: the heart of the chat service. */
export class ChatCore {
  private readonly directory: ConversationDirectory;
  private readonly sequencer: Sequencer;
  private readonly pointers: PointerBatcher;
  private readonly groupQuota: GroupQuota;
  /** Privacy settings, and who may add whom to groups. */
  readonly privacy: PrivacyRules;
  readonly presenceAccess: PresenceAccess;
  /** Who blocked whom, and what a block stops. */
  readonly blocks: BlockRules;
  private readonly pendingReceipts = new Map<string, Map<string, Receipt>>();
  /** Who each receipt goes to: the senders of what it passes (not every member: members² frames in a group). */
  private readonly receiptAudience = new ReceiptAudience();
  private receiptTimer: NodeJS.Timeout | undefined;
  /** Each recent message's trace, so the receipts that acknowledge it can link it. */
  private readonly traces = new MessageTraces();
  /** The traces the pending receipts come from (each ack and the message it names): the flush links them all. */
  private pendingReceiptLinks: Array<SpanContext | undefined> = [];

  constructor(
    private readonly store: MessageStoreServiceClient,
    private readonly fanout: Fanout,
    private readonly config: ChatConfig,
    private readonly log: Logger,
    private readonly signals: DirectorySignals = new LocalSignals(),
  ) {
    this.directory = new ConversationDirectory(store, config.conversationCacheSize);
    this.privacy = new PrivacyRules(store);
    this.blocks = new BlockRules(store);
    this.groupQuota = new GroupQuota(config.maxGroupsPerDay ?? 0, async (userId, sinceMs) => (await call(store, store.countGroupsCreated, { userId, sinceMs })).count);
    this.presenceAccess = new PresenceAccess(async (userId) => {
      const c = await call(store, store.listContacts, { userId });
      // Users in a block with this one (either way), and deleted accounts, are hidden like those who hide their presence.
      return { userIds: c.userIds, hiddenUserIds: [...c.hiddenUserIds, ...c.blockedUserIds] };
    }, {
      ttlMs: config.contactsCacheMs ?? 30_000,
      maxEntries: config.conversationCacheSize ?? DEFAULT_CACHE_SIZE,
    });
    signals.onChanged((change) => this.forget(change));
    this.sequencer = new Sequencer(
      {
        append: (req) => call(store, store.append, req, 15_000).catch((err: unknown) => {
          // Every send of the batch fails with it: say so here, not only to each client.
          this.log.warn("store append failed", { err, conversations: req.groups.length, messages: req.groups.reduce((n, g) => n + g.messages.length, 0) });
          throw err;
        }),
        lastSeq: async (id) => (await call(store, store.getLastSeq, { conversationId: id })).lastSeq,
      },
      async (id) => (await this.directory.get(id)).memberIds,
      { maxInFlight: config.storeWritesInFlight, maxBatchMessages: 2_000, maxQueuedBytesPerSender: config.maxQueuedBytesPerSender, maxQueuedBytes: config.maxQueuedBytes,
        onConflict: (conversationId) => this.log.info("append refused: another chat instance appended first (stale base_seq); retrying on a fresh head", { conversationId }) },
    );
    this.pointers = new PointerBatcher(
      async (updates) => (await call(store, store.updatePointersBatch, { updates }, 15_000)).results.map((r) =>
        r.error !== ErrorCode.ERROR_CODE_UNSPECIFIED || !r.pointers ? { error: r.error || ErrorCode.ERROR_CODE_INTERNAL } : { pointers: r.pointers }),
      (u, moved) => {
        this.queueReceipt(u.conversationId, { conversationId: u.conversationId, userId: u.userId, deliveredSeq: moved.deliveredSeq, readSeq: moved.readSeq });
        // The user's other devices learn the new read pointer through their sync log, and
        // their notifications of what was read are dropped or updated.
        if (moved.readEvent) {
          void this.fanout.userEvents([{ userId: u.userId, event: moved.readEvent }]);
          this.fanout.pushes.readMoved(u.userId, u.conversationId, moved.readSeq);
        }
      },
    );
  }

  /** Drops cached heads and members of the conversations `pred` names (their owner may have changed). */
  cachedConversationIds(): Set<string> {
    return new Set([...this.directory.ids(), ...this.sequencer.ids(), ...this.receiptAudience.ids()]);
  }

  forgetConversations(pred: (conversationId: string) => boolean): void {
    this.sequencer.forgetWhere(pred);
    this.directory.invalidateWhere(pred);
    this.receiptAudience.forgetWhere(pred);
  }

  /** The PRODUCER span of the message: its store write and every delivery of it descend from it. */
  /** `firstSend`: the client says this client_msg_id was never sent before (chat.v1.Send.first_send). */
  async send(actor: Actor, conversationId: string, clientMsgId: string, text: string, replyToSeq = 0, firstSend = false) {
    validateSend({ conversationId, clientMsgId, text }, this.config.maxTextLength);
    if (replyToSeq) validateMessageRef({ conversationId, seq: replyToSeq });
    const info = await this.directory.requireMember(conversationId, actor.userId);
    this.blocks.requireMayWrite(info, actor.userId);
    // Seqs are gapless and never removed (a deletion leaves a tombstone): an earlier message exists iff its seq is at most the head.
    if (replyToSeq && replyToSeq > (await call(this.store, this.store.getLastSeq, { conversationId })).lastSeq) {
      throw ChatError.notFound(`no message ${replyToSeq} in this conversation to reply to`);
    }
    return startSendSpan(conversationId, async (span) => {
      const sentAtMs = Date.now();
      const { appended, memberIds, routes } = await this.sequencer.submit(conversationId, { senderId: actor.userId, senderDeviceId: actor.deviceId, clientMsgId, text, sentAtMs, replyToSeq: replyToSeq || undefined, firstSend });
      const message = appended.message!;
      span.setAttributes(messageAttributes(message));
      if (!appended.duplicate) {
        this.traces.remember(conversationId, message.seq, span.spanContext());
        this.receiptAudience.sent(conversationId, message.seq, actor.userId);
        // The store moved the sender's pointers to their message (they have read what came
        // before it): the senders of what it passed learn it, as from a read ack.
        this.queueReceipt(conversationId, { conversationId, userId: actor.userId, deliveredSeq: message.seq, readSeq: message.seq });
        ChatMetrics.get().messagesSent.add(1);
        this.fanout.messages([{ message, atMs: sentAtMs, memberIds, positions: appended.positions, info, routes }]);
        // The sender is at that device: replies to them wait a moment before a phone buzzes.
        this.fanout.pushes.used(actor.userId);
      }
      return { clientMsgId, conversationId, seq: message.seq, sentAtMs: message.sentAtMs, duplicate: appended.duplicate };
    });
  }

  /**
   * An ephemeral "typing" from a member, to the other members' online devices only
   * (the edge throttles it per session and conversation). A non-member is refused
   * as their send would be.
   */
  async typing(actor: Actor, conversationId: string, expiresInMs: number): Promise<void> {
    validateConversationId(conversationId);
    const info = await this.directory.requireMember(conversationId, actor.userId);
    // Nobody in a block with the typist (either way) hears of it.
    const userIds = BlockRules.without(info, actor.userId, info.memberIds.filter((u) => u !== actor.userId));
    if (userIds.length === 0) return;
    const update = { conversationId, userId: actor.userId, username: info.usernames.get(actor.userId) ?? "", expiresInMs: Math.min(Math.max(expiresInMs, 1_000), 60_000) };
    this.fanout.typing({ userIds, update });
    // Someone typing is at that device: their pushes wait a moment for it to read them.
    this.fanout.pushes.used(actor.userId);
  }

  /** Replaces the text of the actor's own message; every member's devices get a MessageEdited event. */
  async edit(actor: Actor, conversationId: string, seq: number, text: string): Promise<void> {
    validateMessageRef({ conversationId, seq });
    validateText(text, this.config.maxTextLength);
    // An edit is writing: refused where a send would be (a blocked direct conversation).
    this.blocks.requireMayWrite(await this.directory.requireMember(conversationId, actor.userId), actor.userId);
    await this.changeMessage({
      conversationId, seq, actorId: actor.userId, atMs: Date.now(), edit: true, text,
      editWindowMs: this.config.editWindowS * 1000, maxEdits: this.config.maxEditsPerMessage, forEveryone: false, deleteWindowMs: 0,
    });
  }

  /** Deletes a message for the actor's devices, or for everyone (a tombstone keeping its seq). */
  async delete(actor: Actor, conversationId: string, seq: number, forEveryone: boolean): Promise<void> {
    validateMessageRef({ conversationId, seq });
    const info = await this.directory.requireMember(conversationId, actor.userId);
    await this.changeMessage({
      conversationId, seq, actorId: actor.userId, atMs: Date.now(), edit: false, text: "",
      editWindowMs: 0, maxEdits: 0, forEveryone, deleteWindowMs: this.config.deleteWindowS * 1000,
    });
    // Its text must not reach a lock screen after this: pushes not yet sent are dropped.
    if (forEveryone) this.fanout.withdrawPush(conversationId, seq, info.memberIds);
  }

  /** The store applies the change and logs its event; the events go out like membership changes. */
  private async changeMessage(req: ChangeMessageRequest): Promise<void> {
    const { events } = await call(this.store, this.store.changeMessage, req, 15_000);
    void this.fanout.userEvents(events).catch((err) => this.log.warn("fanout failed", { err }));
  }

  async ack(actor: Actor, conversationId: string, seq: number, kind: AckKind) {
    if (kind !== AckKind.ACK_KIND_DELIVERED && kind !== AckKind.ACK_KIND_READ) throw ChatError.invalid("ack kind must be DELIVERED or READ");
    // The receipt's trace links the message it acknowledges (span links: a different trace).
    const messageTrace = this.traces.lookup(conversationId, seq);
    const ackSpan = trace.getActiveSpan();
    ackSpan?.setAttributes({ ...messageAttributes({ conversationId, seq }), "meshchat.ack.kind": AckKind[kind] ?? String(kind) });
    if (messageTrace) ackSpan?.addLink({ context: messageTrace });
    await this.directory.requireMember(conversationId, actor.userId);
    const read = kind === AckKind.ACK_KIND_READ ? seq : 0;
    const res = await this.pointers.update({ conversationId, userId: actor.userId, deliveredSeq: seq, readSeq: read });
    if (res.changed) this.pendingReceiptLinks.push(ackSpan?.spanContext(), messageTrace);
    return { deliveredSeq: res.deliveredSeq, readSeq: res.readSeq };
  }

  async openDirect(actor: Actor, username: string): Promise<Conversation> {
    validateUsername(username);
    const peer = await this.userByName(username);
    // A conversation with nobody else in it is not a chat: clients offer notes-to-self nowhere.
    if (peer.id === actor.userId) throw ChatError.invalid("a direct conversation is with someone else: that username is yours");
    if ((await this.blocks.blockersOf(actor.userId)).has(peer.id)) throw ChatError.denied(`${username} does not accept your messages`);
    const ids = [actor.userId, peer.id].sort();
    const conversation = Conversation.create({
      id: `d:${ids.join(":")}`,
      kind: ConversationKind.CONVERSATION_KIND_DIRECT,
      members: ids.map((userId) => Member.create({ userId })),
      createdAtMs: Date.now(),
    });
    const res = await call(this.store, this.store.createConversation, { conversation, createdBy: actor.userId, maxMembers: 2 });
    if (res.created) this.directoryChanged({ kind: "contacts", userIds: ids });
    void this.fanout.userEvents(res.events);
    return res.conversation!;
  }

  async createGroup(actor: Actor, title: string, usernames: string[]): Promise<Conversation> {
    validateTitle(title);
    if (usernames.length >= this.config.maxGroupMembers) throw new ChatError(ErrorCode.ERROR_CODE_GROUP_FULL, `a group has at most ${this.config.maxGroupMembers} members`);
    usernames.forEach(validateUsername);
    const users = await Promise.all([...new Set(usernames)].map((u) => this.userByName(u)));
    await this.requireNotBlockedBy(actor.userId, users);
    await this.privacy.requireMayAdd(actor.userId, users);
    const ids = [...new Set([actor.userId, ...users.map((u) => u.id)])];
    if (ids.length > this.config.maxGroupMembers) throw new ChatError(ErrorCode.ERROR_CODE_GROUP_FULL, `a group has at most ${this.config.maxGroupMembers} members`);
    const conversation = Conversation.create({
      id: `g:${randomUUID()}`,
      kind: ConversationKind.CONVERSATION_KIND_GROUP,
      title,
      members: ids.map((userId) => Member.create({ userId })),
      createdAtMs: Date.now(),
    });
    const res = await this.groupQuota.admit(actor.userId, () => call(this.store, this.store.createConversation, { conversation, createdBy: actor.userId, maxMembers: this.config.maxGroupMembers }));
    this.directoryChanged({ kind: "contacts", userIds: ids });
    void this.fanout.userEvents(res.events);
    return res.conversation!;
  }

  async changeMembership(actor: Actor, conversationId: string, username: string, adding: boolean): Promise<Conversation> {
    validateUsername(username);
    await this.directory.requireMember(conversationId, actor.userId);
    const subject = await this.userByName(username);
    if (adding) {
      await this.requireNotBlockedBy(actor.userId, [subject]);
      await this.privacy.requireMayAdd(actor.userId, [subject]);
    }
    const action = adding ? MembershipAction.MEMBERSHIP_ACTION_ADDED : subject.id === actor.userId ? MembershipAction.MEMBERSHIP_ACTION_LEFT : MembershipAction.MEMBERSHIP_ACTION_REMOVED;
    // Serialised with this conversation's appends: no batch is written with a stale member list.
    const res = await this.sequencer.exclusive(conversationId, async () => {
      try {
        return await call(this.store, this.store.changeMembership, { conversationId, actorId: actor.userId, subjectId: subject.id, action, maxMembers: this.config.maxGroupMembers });
      } finally {
        this.directoryChanged({ kind: "conversation", conversationId });
      }
    });
    // Whoever shared the group with the subject gains or loses a contact (the subject too).
    this.directoryChanged({ kind: "contacts", userIds: [...new Set([subject.id, ...res.conversation!.members.map((m) => m.userId)])] });
    void this.fanout.userEvents(res.events);
    return res.conversation!;
  }

  async setMuted(actor: Actor, conversationId: string, muted: boolean): Promise<void> {
    await this.directory.requireMember(conversationId, actor.userId);
    await call(this.store, this.store.setMuted, { conversationId, userId: actor.userId, muted });
    this.directoryChanged({ kind: "conversation", conversationId });
  }

  async setPrivacy(actor: Actor, change: PrivacySettings | undefined): Promise<PrivacySettings> {
    const settings = await this.privacy.set(actor, change);
    this.directoryChanged({ kind: "privacy", userId: actor.userId });
    return settings;
  }

  /** Drops this instance's cached copies of what changed and tells the other chat instances. */
  private directoryChanged(change: DirectoryChange): void {
    this.forget(change);
    void this.signals.changed(change);
  }

  private forget(change: DirectoryChange): void {
    switch (change.kind) {
      case "conversation": return this.directory.invalidate(change.conversationId);
      case "contacts": return this.presenceAccess.forgetUsers(change.userIds);
      case "privacy": return this.presenceAccess.forgetContactsOf(change.userId);
      default: {
        // The compiler proves every kind is handled; parseDirectoryChange drops unknown ones.
        const unhandled: never = change;
        return unhandled;
      }
    }
  }

  async drain(): Promise<void> {
    await this.sequencer.drain();
    await this.pointers.drain();
    await this.flushReceipts();
    await this.fanout.pushes.flushAll();
  }

  /** Blocks or unblocks a user by name; the conversations the two share see it at their next message. */
  async setBlocked(actor: Actor, username: string, blocked: boolean): Promise<string> {
    validateUsername(username);
    const subject = await this.userByName(username);
    for (const conversationId of await this.blocks.set(actor, subject, blocked)) this.directoryChanged({ kind: "conversation", conversationId });
    // Each one's presence is hidden from (or shown to) the other again: both contact lists are read anew.
    this.directoryChanged({ kind: "contacts", userIds: [actor.userId, subject.id] });
    return subject.id;
  }

  /** Members now show the account as deleted (and take no direct message); nobody sees its presence. */
  accountDeleted(userId: string, conversationIds: string[]): void {
    for (const conversationId of conversationIds) this.directoryChanged({ kind: "conversation", conversationId });
    this.directoryChanged({ kind: "privacy", userId });
  }

  /**
   * Deletes for everyone every message the user sent in these conversations, through the same
   * path as a DeleteRequest (the store's tombstone, the logs' events, the history cache, the
   * pending pushes), with no window. Repeats until the store lists none (each listing is bounded
   * on Cassandra); a message already deleted meanwhile is skipped. Answers how many it deleted.
   */
  async eraseMessagesOf(userId: string, conversationIds: string[]): Promise<number> {
    let erased = 0;
    for (const conversationId of conversationIds) {
      const memberIds = (await this.directory.get(conversationId)).memberIds;
      for (;;) {
        const { seqs } = await call(this.store, this.store.listSentMessages, { conversationId, senderId: userId });
        let round = 0;
        for (let i = 0; i < seqs.length; i += ERASE_IN_FLIGHT) {
          const done = await Promise.all(seqs.slice(i, i + ERASE_IN_FLIGHT).map((seq) => this.eraseOne(userId, conversationId, seq, memberIds)));
          round += done.filter(Boolean).length;
        }
        erased += round;
        if (round === 0) break;
      }
    }
    return erased;
  }

  private async eraseOne(userId: string, conversationId: string, seq: number, memberIds: string[]): Promise<boolean> {
    try {
      await this.changeMessage({
        conversationId, seq, actorId: userId, atMs: Date.now(), edit: false, text: "",
        editWindowMs: 0, maxEdits: 0, forEveryone: true, deleteWindowMs: Number.MAX_SAFE_INTEGER,
      });
    } catch (err) {
      if (err instanceof ChatError && err.code === ErrorCode.ERROR_CODE_MESSAGE_DELETED) return false;
      throw err;
    }
    this.fanout.withdrawPush(conversationId, seq, memberIds);
    return true;
  }

  /** Someone who blocked the actor cannot be put in a group by them (told as the blocked are told elsewhere). */
  private async requireNotBlockedBy(actorId: string, users: Array<{ id: string; username: string }>): Promise<void> {
    const blockers = await this.blocks.blockersOf(actorId);
    const blocker = users.find((u) => blockers.has(u.id));
    if (blocker) throw ChatError.denied(`${blocker.username} does not accept being added by you`);
  }

  /** A user by name; a deleted account is no longer anyone's to find. */
  private async userByName(username: string) {
    const res = await call(this.store, this.store.getUserByName, { username });
    if (!res.user || res.user.deletedAtMs) throw ChatError.notFound(`no user named ${username}`);
    return res.user;
  }

  /** Receipts are coalesced per conversation so a busy group does not multiply frames; each goes to those it concerns (ReceiptAudience). */
  private queueReceipt(conversationId: string, receipt: Receipt): void {
    let m = this.pendingReceipts.get(conversationId);
    if (!m) this.pendingReceipts.set(conversationId, (m = new Map()));
    // Pointers only move forward; moves that reach here out of order keep the furthest.
    const queued = m.get(receipt.userId);
    m.set(receipt.userId, queued ? { ...receipt, deliveredSeq: Math.max(queued.deliveredSeq, receipt.deliveredSeq), readSeq: Math.max(queued.readSeq, receipt.readSeq) } : receipt);
    this.receiptTimer ??= setTimeout(() => void this.flushReceipts(), this.config.receiptFlushMs);
  }

  /**
   * A coalesced delivery is its own trace (not the trace of whichever ack started
   * the timer) linking every ack and message it carries receipts for.
   */
  private flushReceipts(): Promise<void> {
    const links = linksTo(this.pendingReceiptLinks);
    this.pendingReceiptLinks = [];
    return trace.getTracer("meshchat").startActiveSpan("chat.deliver_receipts", { root: true, links, attributes: { "messaging.system": "meshchat", "messaging.operation.type": "send", "meshchat.receipts.conversations": this.pendingReceipts.size } }, async (span) => {
      try {
        await this.flushReceiptsNow();
      } finally {
        span.end();
      }
    });
  }

  private async flushReceiptsNow(): Promise<void> {
    this.receiptTimer = undefined;
    const batch = [...this.pendingReceipts];
    this.pendingReceipts.clear();
    const items: Array<{ receipt: Receipt; userIds: string[] }> = [];
    for (const [conversationId, receipts] of batch) {
      const info = await this.directory.get(conversationId).catch(() => null);
      if (!info) continue;
      for (const receipt of receipts.values()) {
        // Receipts stop between users in a block, either way.
        const userIds = BlockRules.without(info, receipt.userId, this.receiptAudience.audience(receipt, info.memberIds));
        if (userIds.length > 0) items.push({ receipt, userIds });
      }
    }
    if (items.length > 0) await this.fanout.receipts(items).catch((err) => this.log.warn("receipts failed", { err }));
  }
}

function actorOf(actor: Actor | undefined): Actor {
  if (!actor || !actor.userId || !actor.deviceId) throw ChatError.invalid("actor is required");
  return actor;
}

/** The ChatService gRPC API over ChatCore. */
export function chatService(core: ChatCore): AsyncService<typeof ChatServiceService> {
  return {
    send: async (req) => {
      const s = req.send ?? { conversationId: "", clientMsgId: "", text: "", replyToSeq: 0, firstSend: false };
      return { sent: await core.send(actorOf(req.actor), s.conversationId, s.clientMsgId, s.text, s.replyToSeq ?? 0, s.firstSend) };
    },
    ack: async (req) => core.ack(actorOf(req.actor), req.ack?.conversationId ?? "", req.ack?.seq ?? 0, req.ack?.kind ?? AckKind.ACK_KIND_UNSPECIFIED),
    openDirect: async (req) => ({ conversation: await core.openDirect(actorOf(req.actor), req.username) }),
    createGroup: async (req) => ({ conversation: await core.createGroup(actorOf(req.actor), req.title, req.usernames) }),
    addMember: async (req) => ({ conversation: await core.changeMembership(actorOf(req.actor), req.conversationId, req.username, true) }),
    removeMember: async (req) => ({ conversation: await core.changeMembership(actorOf(req.actor), req.conversationId, req.username, false) }),
    setMuted: async (req) => { await core.setMuted(actorOf(req.actor), req.conversationId, req.muted); return {}; },
    getPrivacy: async (req) => ({ settings: await core.privacy.get(actorOf(req.actor)) }),
    setPrivacy: async (req) => ({ settings: await core.setPrivacy(actorOf(req.actor), req.settings) }),
    presenceAccess: async (req) => ({ hiddenUserIds: await core.presenceAccess.hiddenAmong(actorOf(req.actor).userId, req.userIds) }),
    edit: async (req) => { await core.edit(actorOf(req.actor), req.edit?.conversationId ?? "", req.edit?.seq ?? 0, req.edit?.text ?? ""); return {}; },
    delete: async (req) => { await core.delete(actorOf(req.actor), req.delete?.conversationId ?? "", req.delete?.seq ?? 0, req.delete?.forEveryone ?? false); return {}; },
    typing: async (req) => { await core.typing(actorOf(req.actor), req.conversationId, req.expiresInMs); return {}; },
    setBlocked: async (req) => ({ userId: await core.setBlocked(actorOf(req.actor), req.username, req.blocked) }),
    listBlocked: async (req) => ({ users: await core.blocks.list(actorOf(req.actor)) }),
  };
}
