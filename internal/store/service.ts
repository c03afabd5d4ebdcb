import { MessageStoreServiceService } from "../../gen/chat/internal/v1/store.js";
import type { AsyncService } from "../grpc/handler.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { validatePrivacy } from "./privacy.js";
import type { Store } from "./store.js";

const READ_LOG_MAX = 5_000;
const LOG_HEADS_MAX = 1_000;
const POINTER_UPDATES_MAX = 5_000;
const CHECK_SESSIONS_MAX = 1_000;
const PRIVACY_USERS_MAX = 1_000;
/** A SetPrivacySettings without settings changes nothing. */
const DEFAULT_UNCHANGED = { presence: 0, groupAdds: 0 };

/**
 * The MessageStoreService gRPC API over a Store: translation, no policy, plus the two orders route
 * versions need (route-versions.ts): raised before a catch-up's read, read after an append commits.
 */
export function storeService(store: Store): AsyncService<typeof MessageStoreServiceService> {
  return {
    createUser: async (req) => { await store.createUser(req.user!); return {}; },
    getUserByName: async (req) => ({ user: (await store.getUserByName(req.username)) ?? undefined }),
    getUsers: async (req) => ({ users: await store.getUsers(req.ids) }),
    createConversation: async (req) => store.createConversation(req.conversation!, req.createdBy, req.maxMembers),
    getConversation: async (req) => {
      const found = await store.getConversation(req.conversationId);
      const blocks = found ? await store.blockPairs(found.conversation.members.map((m) => m.userId)) : [];
      return { conversation: found?.conversation, mutedUserIds: found?.mutedUserIds ?? [], blocks };
    },
    changeMembership: async (req) => store.changeMembership(req),
    listConversations: async (req) => ({ conversations: await store.listConversations(req.userId) }),
    listContacts: async (req) => {
      const userIds = await store.contactIds(req.userId);
      const [hiddenUserIds, blocks, deleted] = await Promise.all([store.presenceHidden(userIds), store.blocks(req.userId), store.deletedAmong(userIds)]);
      const blockedUserIds = [...new Set([...blocks.blocked.map((b) => b.userId), ...blocks.blockedBy, ...deleted])];
      return { userIds, hiddenUserIds, blockedUserIds };
    },
    getPrivacySettings: async (req) => {
      if (req.userIds.length > PRIVACY_USERS_MAX) throw ChatError.invalid(`at most ${PRIVACY_USERS_MAX} users per call`);
      return { settings: await store.privacySettings(req.userIds) };
    },
    setPrivacySettings: async (req) => {
      const change = req.settings ?? { ...DEFAULT_UNCHANGED };
      validatePrivacy(change);
      return { settings: await store.setPrivacySettings(req.userId, change) };
    },
    countGroupsCreated: async (req) => ({ count: await store.groupsCreatedSince(req.userId, req.sinceMs) }),
    setMuted: async (req) => { await store.setMuted(req.conversationId, req.userId, req.muted); return {}; },
    append: async (req) => {
      const results = await store.append(req.groups);
      // Read after the write committed (docs/performance.md, "The route cache").
      const versions = store.routeVersions;
      if (versions) {
        results.forEach((r, i) => {
          r.routeEpoch = versions.epoch;
          r.routeVersions = versions.of(req.groups[i]!.memberIds);
        });
      }
      return { results };
    },
    getLastSeq: async (req) => ({ lastSeq: await store.lastSeq(req.conversationId) }),
    readLog: async (req) => {
      // A catch-up: its device's route may be new (raised before the page's head is read).
      store.routeVersions?.raise([req.userId]);
      // The store cuts the page at PAGE_MAX_BYTES, so the reply always fits a gRPC message.
      const page = await store.readLog(req.userId, req.afterPos, Math.min(Math.max(req.limit || 500, 1), READ_LOG_MAX));
      return { events: page.events, head: page.head, more: page.more ?? false, trimmedTo: page.trimmedTo ?? 0 };
    },
    getLogHeads: async (req) => {
      if (req.userIds.length > LOG_HEADS_MAX) throw ChatError.invalid(`at most ${LOG_HEADS_MAX} users per call`);
      if (req.catchUp) store.routeVersions?.raise(req.userIds);
      return { heads: await store.logHeads(req.userIds) };
    },
    routesChanged: async (req) => {
      if (req.userIds.length > LOG_HEADS_MAX) throw ChatError.invalid(`at most ${LOG_HEADS_MAX} users per call`);
      store.routeVersions?.raise(req.userIds);
      return {};
    },
    history: async (req) => ({ page: await store.history(req.userId, req.request!) }),
    createSession: async (req) => ({ evictedSessionIds: await store.createSession(req.session!, req.refreshHash, req.maxLive) }),
    rotateSession: async (req) => {
      const r = await store.rotateSession(req);
      return { outcome: r.outcome, session: r.session };
    },
    endSession: async (req) => ({ ended: await store.endSession(req.userId, req.sessionId, req.nowMs) }),
    setPassword: async (req) => ({ endedSessionIds: await store.setPassword(req.userId, req.passwordHash, req.keepSessionId, req.nowMs) }),
    checkSessions: async (req) => {
      if (req.sessionIds.length > CHECK_SESSIONS_MAX) throw ChatError.invalid(`at most ${CHECK_SESSIONS_MAX} sessions per call`);
      return { live: await store.checkSessions(req.sessionIds, Date.now()) };
    },
    changeMessage: async (req) => ({ events: await store.changeMessage(req) }),
    setBlocked: async (req) => {
      if (!req.userId || !req.blockedId || req.userId === req.blockedId) throw ChatError.invalid("a block is between two different users");
      return store.setBlocked(req.userId, req.blockedId, req.blocked, req.atMs);
    },
    getBlocks: async (req) => store.blocks(req.userId),
    deleteAccount: async (req) => store.deleteAccount(req.userId, req.nowMs),
    listSentMessages: async (req) => ({ seqs: await store.sentMessages(req.conversationId, req.senderId) }),
    updatePointersBatch: async (req) => {
      if (req.updates.length > POINTER_UPDATES_MAX) throw ChatError.invalid(`at most ${POINTER_UPDATES_MAX} pointer updates per call`);
      const results = await store.updatePointersBatch(req.updates);
      return { results: results.map((r) => (r.error !== undefined ? { error: r.error, pointers: undefined } : { error: ErrorCode.ERROR_CODE_UNSPECIFIED, pointers: { ...r.pointers, readEvent: r.pointers.readEvent } })) };
    },
  };
}
