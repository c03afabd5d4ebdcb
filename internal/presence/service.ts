import { PresenceServiceService } from "../../gen/chat/internal/v1/presence.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { AsyncService } from "../grpc/handler.js";
import type { Presence } from "./presence.js";

const MAX_USERS_PER_CALL = 500;
const MAX_CONNECTS_PER_CALL = 1_000;

function checkCount(ids: string[]): void {
  if (ids.length > MAX_USERS_PER_CALL) throw ChatError.invalid(`at most ${MAX_USERS_PER_CALL} users per call`);
}

/** The PresenceService gRPC API. Who may see whom is checked by the caller (the edge). */
export function presenceService(presence: Presence): AsyncService<typeof PresenceServiceService> {
  return {
    connectBatch: async (req) => {
      if (req.connects.length > MAX_CONNECTS_PER_CALL) throw ChatError.invalid(`at most ${MAX_CONNECTS_PER_CALL} connects per call`);
      if (req.connects.some((c) => !c.route)) throw ChatError.invalid("route is required");
      const results = await Promise.all(req.connects.map(async (c) => {
        try {
          return { error: ErrorCode.ERROR_CODE_UNSPECIFIED, message: "", response: { replaced: await presence.connect(c.route!, c.takeover) } };
        } catch (err) {
          // A refusal (the device is in use) answers that connect alone; a backend failure fails the call.
          if (err instanceof ChatError && err.code !== ErrorCode.ERROR_CODE_UNAVAILABLE) return { error: err.code, message: err.message, response: undefined };
          throw err;
        }
      }));
      return { results };
    },
    disconnect: async (req) => {
      if (req.route) await presence.disconnect(req.route);
      return {};
    },
    heartbeat: async (req) => ({ restoredUserIds: await presence.heartbeat(req.routes) }),
    getRoutes: async (req) => ({ routes: await presence.routes(req.userIds) }),
    query: async (req) => {
      checkCount(req.userIds);
      return { users: await presence.query(req.userIds) };
    },
    unwatch: async (req) => {
      if (!req.userId) throw ChatError.invalid("user_id is required");
      await presence.unwatch(req.userId, req.watcherUserId || undefined);
      return {};
    },
    subscribe: async (req) => {
      checkCount(req.userIds);
      if (!req.subscriber) throw ChatError.invalid("subscriber is required");
      return { users: await presence.subscribe(req.subscriber, req.userIds) };
    },
  };
}
