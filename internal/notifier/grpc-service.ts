import { NotifierServiceService, type ActivityRequest, type NotifyRequest } from "../../gen/chat/internal/v1/notifier.js";
import { PushProvider } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { AsyncService } from "../grpc/handler.js";
import type { PushDispatcher } from "./dispatcher.js";
import type { ProviderName } from "./provider.js";
import type { TokenStore } from "./token-store.js";

/** The provider a client names (the wire enum), as the notifier names it. */
const PROVIDER_OF_WIRE: Partial<Record<PushProvider, ProviderName>> = {
  [PushProvider.PUSH_PROVIDER_FCM]: "fcm",
  [PushProvider.PUSH_PROVIDER_APNS]: "apns",
  [PushProvider.PUSH_PROVIDER_WEBHOOK]: "webhook",
};

/**
 * PUSH_MAX_DEVICES_PER_USER: devices of one user with a push token. Every message to the
 * user is pushed to each of them, so the count is bounded; a device registering again
 * (a new token) does not count twice. Default 10.
 */
export const DEFAULT_MAX_DEVICES_PER_USER = 10;
/** PUSH_TOKEN_MAX_BYTES: FCM tokens are ~160 characters, APNs ones 64; webhook tokens are the installation's. Default 1024. */
export const DEFAULT_MAX_TOKEN_BYTES = 1024;

export interface TokenLimits {
  maxDevicesPerUser: number;
  maxTokenBytes: number;
}

/** One message for its recipients. */
async function notifyOne(dispatcher: PushDispatcher, req: NotifyRequest): Promise<void> {
  const m = req.message;
  if (!m) throw ChatError.invalid("message is required");
  for (const r of req.recipients) {
    if (r.userId === m.senderId) continue;
    await dispatcher.notify({
      userId: r.userId,
      conversationId: m.conversationId,
      seq: m.seq,
      senderName: req.senderName,
      conversationTitle: req.conversationTitle,
      text: m.text,
      muted: r.muted,
      excludeDeviceIds: r.onlineDeviceIds,
    });
  }
}

/** The NotifierService gRPC API over the token store and the push dispatcher. */
export function notifierService(tokens: TokenStore, dispatcher: PushDispatcher, configured: Set<string>, limits: TokenLimits = { maxDevicesPerUser: DEFAULT_MAX_DEVICES_PER_USER, maxTokenBytes: DEFAULT_MAX_TOKEN_BYTES }): AsyncService<typeof NotifierServiceService> {
  return {
    registerToken: async (req) => {
      const name = PROVIDER_OF_WIRE[req.provider];
      if (!name) throw ChatError.invalid("unknown push provider");
      if (!configured.has(name)) throw ChatError.invalid(`push provider ${name} is not configured on this installation`);
      if (Buffer.byteLength(req.token) > limits.maxTokenBytes) throw ChatError.invalid(`a push token is at most ${limits.maxTokenBytes} bytes`);
      const devices = await tokens.listForUser(req.userId);
      if (!devices.some((d) => d.deviceId === req.deviceId) && devices.length >= limits.maxDevicesPerUser) {
        throw ChatError.invalid(`at most ${limits.maxDevicesPerUser} devices of an account receive pushes: unregister one (log it out) first`);
      }
      await tokens.register(req.userId, req.deviceId, name, req.token);
      return {};
    },
    unregisterToken: async (req) => {
      // Every device's (an account deletion), or one device's (a logout).
      const devices = req.allDevices ? (await tokens.listForUser(req.userId)).map((t) => t.deviceId) : [req.deviceId];
      for (const deviceId of devices) await tokens.unregister(req.userId, deviceId);
      return {};
    },
    notify: async (req) => {
      await notifyOne(dispatcher, req);
      return {};
    },
    notifyBatch: async (req) => {
      // Uses first: one heard in the same window as a message holds that message's push.
      if (req.activity) applyActivity(dispatcher, req.activity);
      for (const n of req.notifications) await notifyOne(dispatcher, n);
      return {};
    },
    activity: async (req) => {
      applyActivity(dispatcher, req);
      return {};
    },
    withdraw: async (req) => ({ withdrawn: dispatcher.withdraw(req.userIds, req.conversationId, req.seq) }),
    userOnline: async (req) => {
      for (const userId of [req.userId, ...req.userIds]) if (userId) dispatcher.clearCollapse(userId);
      return {};
    },
  };
}

function applyActivity(dispatcher: PushDispatcher, req: ActivityRequest): void {
  for (const userId of req.activeUserIds) dispatcher.active(userId);
  for (const r of req.reads) dispatcher.read(r.userId, r.conversationId, r.readSeq);
}
