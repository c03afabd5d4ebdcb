import { NotifierServiceService } from "../../gen/chat/internal/v1/notifier.js";
import { PushProvider } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { AsyncService } from "../grpc/handler.js";
import type { PushDispatcher } from "./dispatcher.js";
import type { TokenStore } from "./token-store.js";

const PROVIDER_NAMES: Partial<Record<PushProvider, "fcm" | "apns" | "webhook">> = {
  [PushProvider.PUSH_PROVIDER_FCM]: "fcm",
  [PushProvider.PUSH_PROVIDER_APNS]: "apns",
  [PushProvider.PUSH_PROVIDER_WEBHOOK]: "webhook",
};

/** The NotifierService gRPC API over the token store and the push dispatcher. */
export function notifierService(tokens: TokenStore, dispatcher: PushDispatcher, configured: Set<string>): AsyncService<typeof NotifierServiceService> {
  return {
    registerToken: async (req) => {
      const name = PROVIDER_NAMES[req.provider];
      if (!name) throw ChatError.invalid("unknown push provider");
      if (!configured.has(name)) throw ChatError.invalid(`push provider ${name} is not configured on this installation`);
      await tokens.register(req.userId, req.deviceId, name, req.token);
      return {};
    },
    unregisterToken: async (req) => {
      await tokens.unregister(req.userId, req.deviceId);
      return {};
    },
    notify: async (req) => {
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
        });
      }
      return {};
    },
    userOnline: async (req) => {
      dispatcher.clearCollapse(req.userId);
      return {};
    },
  };
}
