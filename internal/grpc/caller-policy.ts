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
    chat: ["EdgeDeliveryService/Deliver"],
    presence: ["EdgeDeliveryService/Deliver"],
    // An edge closes another edge's session of a device that connected again elsewhere.
    edge: ["EdgeDeliveryService/Kick"],
  },
  chat: {
    edge: [
      "ChatService/Send", "ChatService/Ack", "ChatService/OpenDirect", "ChatService/CreateGroup", "ChatService/AddMember",
      "ChatService/RemoveMember", "ChatService/SetMuted", "ChatService/Typing", "ChatService/Edit", "ChatService/Delete", "AccountService/Signup", "AccountService/Login",
    ],
  },
  presence: {
    edge: ["PresenceService/Connect", "PresenceService/Disconnect", "PresenceService/Heartbeat", "PresenceService/Query", "PresenceService/Subscribe"],
    chat: ["PresenceService/GetRoutes"],
  },
  "message-store": {
    // Reads for a user the edge has authenticated; never writes, never password hashes.
    edge: [
      "MessageStoreService/History", "MessageStoreService/ReadLog", "MessageStoreService/GetLogHeads", "MessageStoreService/ListConversations",
      "MessageStoreService/ListContacts",
    ],
    chat: [
      "MessageStoreService/CreateUser", "MessageStoreService/GetUserByName", "MessageStoreService/CreateConversation",
      "MessageStoreService/GetConversation", "MessageStoreService/ChangeMembership", "MessageStoreService/SetMuted",
      "MessageStoreService/Append", "MessageStoreService/GetLastSeq", "MessageStoreService/UpdatePointersBatch",
      "MessageStoreService/ChangeMessage",
    ],
  },
  notifier: {
    edge: ["NotifierService/RegisterToken", "NotifierService/UnregisterToken", "NotifierService/UserOnline"],
    chat: ["NotifierService/Notify", "NotifierService/Withdraw"],
  },
};

/** Methods that some service defines and no caller needs: refused to everyone. */
export const UNCALLED_METHODS: readonly string[] = ["MessageStoreService/GetUsers"];

/** "Service/Method" of a gRPC path such as /chat.internal.v1.ChatService/Send. */
export function methodOf(path: string): string {
  const [, qualified = "", method = ""] = path.split("/");
  return `${qualified.slice(qualified.lastIndexOf(".") + 1)}/${method}`;
}
