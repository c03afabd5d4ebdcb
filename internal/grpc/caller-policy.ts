// No imports on purpose: mesh/gen.ts reads this table to write the sidecars' RBAC policies.

/** The package of the internal services: a method's gRPC path is `/${INTERNAL_PACKAGE}.${Service}/${Method}`. */
export const INTERNAL_PACKAGE = "chat.internal.v1";

/**
 * Least privilege inside the mesh: for each service (named by the identity of the
 * process that serves it), each caller identity and the methods ("Service/Method")
 * it may call; nothing else gets through. The app enforces it when mTLS is on, and
 * mesh/gen.ts turns the same table into each Envoy sidecar's RBAC policy, so the two
 * cannot drift apart. Who calls what, and why, is in docs/security.md.
 */
export const CALLER_POLICY: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  edge: {
    // EndSessions: an account deletion closes the account's sockets on every edge holding one.
    // Multiplex: the stream that carries a caller's unary calls (multiplex.proto); each call on
    // it is checked against this table as its own method, so the stream grants nothing more.
    chat: ["EdgeDeliveryService/Deliver", "EdgeDeliveryService/EndSessions", "EdgeDeliveryService/Multiplex"],
    presence: ["EdgeDeliveryService/Deliver"],
    // An edge closes another edge's session of a device that connected again elsewhere.
    edge: ["EdgeDeliveryService/Kick"],
  },
  chat: {
    edge: [
      "ChatService/Send", "ChatService/Ack", "ChatService/OpenDirect", "ChatService/CreateGroup", "ChatService/AddMember",
      "ChatService/RemoveMember", "ChatService/SetMuted", "ChatService/Typing", "ChatService/Edit", "ChatService/Delete", "AccountService/Signup", "AccountService/Login",
      "AccountService/Refresh", "AccountService/Logout", "AccountService/ChangePassword",
      // The user's own privacy settings (the edge's GetPrivacy / SetPrivacy frames).
      "ChatService/GetPrivacy", "ChatService/SetPrivacy",
      // Whose presence the session's user may see (presence subscribe and query frames).
      "ChatService/PresenceAccess",
      // Block lists and account deletion (the edge's Block, Unblock, ListBlocked, DeleteAccount frames).
      "ChatService/SetBlocked", "ChatService/ListBlocked", "AccountService/DeleteAccount",
      // The stream that carries the edge's sends, acks and typing (each checked as its own method).
      "ChatService/Multiplex",
    ],
  },
  presence: {
    // Unwatch: a user who hid their presence (the edge's SetPrivacy frame) drops every subscription to them.
    edge: ["PresenceService/ConnectBatch", "PresenceService/Disconnect", "PresenceService/Heartbeat", "PresenceService/Query", "PresenceService/Subscribe", "PresenceService/Unwatch", "PresenceService/Multiplex"],
    chat: ["PresenceService/GetRoutes", "PresenceService/Multiplex"],
  },
  "message-store": {
    // Reads for a user the edge has authenticated; never writes, never password hashes. CheckSessions
    // answers only "live or not" for session ids the edge read from tokens it verified. RoutesChanged
    // writes nothing durable: it moves in-memory route versions (a refetch of routes by chat).
    edge: [
      "MessageStoreService/History", "MessageStoreService/ReadLog", "MessageStoreService/GetLogHeads", "MessageStoreService/ListConversations",
      "MessageStoreService/CheckSessions", "MessageStoreService/RoutesChanged",
      // The stream that carries these calls where the store is one instance (each checked as its own method).
      "MessageStoreService/Multiplex",
    ],
    chat: [
      "MessageStoreService/CreateUser", "MessageStoreService/GetUserByName", "MessageStoreService/CreateConversation",
      "MessageStoreService/GetConversation", "MessageStoreService/ChangeMembership", "MessageStoreService/SetMuted",
      "MessageStoreService/Append", "MessageStoreService/GetLastSeq", "MessageStoreService/UpdatePointersBatch",
      // Sessions are made, rotated and ended only by the accounts service, which issues the tokens.
      "MessageStoreService/CreateSession", "MessageStoreService/RotateSession", "MessageStoreService/EndSession", "MessageStoreService/SetPassword",
      // A password change checks first that the caller's session is live.
      "MessageStoreService/CheckSessions",
      // The groups-per-day quota of CreateGroup.
      "MessageStoreService/CountGroupsCreated",
      // Privacy: settings are read and written through chat only; who may add whom, and who sees
      // whose presence (ChatService/PresenceAccess), need a user's contacts.
      "MessageStoreService/GetPrivacySettings", "MessageStoreService/SetPrivacySettings", "MessageStoreService/ListContacts",
      "MessageStoreService/ChangeMessage",
      // Blocks, account deletion and its erasure (listConversations: the account's conversations).
      "MessageStoreService/SetBlocked", "MessageStoreService/GetBlocks", "MessageStoreService/DeleteAccount",
      "MessageStoreService/ListSentMessages", "MessageStoreService/ListConversations",
      "MessageStoreService/Multiplex",
    ],
  },
  notifier: {
    edge: ["NotifierService/RegisterToken", "NotifierService/UnregisterToken", "NotifierService/UserOnline"],
    // NotifyBatch and Activity: one call per tick; Notify stays for a chat of the previous release.
    // UnregisterToken: every push token of a deleted account.
    chat: ["NotifierService/Notify", "NotifierService/NotifyBatch", "NotifierService/Activity", "NotifierService/Withdraw", "NotifierService/UnregisterToken"],
  },
};

/** Methods that some service defines and no caller needs: refused to everyone. */
export const UNCALLED_METHODS: readonly string[] = ["MessageStoreService/GetUsers"];

/** "Service/Method" of a gRPC path such as /chat.internal.v1.ChatService/Send. */
export function methodOf(path: string): string {
  const [, qualified = "", method = ""] = path.split("/");
  return `${qualified.slice(qualified.lastIndexOf(".") + 1)}/${method}`;
}
