import { PresenceServiceService } from "../../gen/chat/internal/v1/presence.js";
import { ChatError } from "../errors/chat-error.js";
import type { AsyncService } from "../grpc/handler.js";
import type { Presence } from "./presence.js";

const MAX_USERS_PER_CALL = 500;

function checkCount(ids: string[]): void {
  if (ids.length > MAX_USERS_PER_CALL) throw ChatError.invalid(`at most ${MAX_USERS_PER_CALL} users per call`);
}

/** The PresenceService gRPC API. Who may see whom is checked by the caller (the edge). */
export function presenceService(presence: Presence): AsyncService<typeof PresenceServiceService> {
  return {
    connect: async (req) => {
      if (!req.route) throw ChatError.invalid("route is required");
      return { replaced: await presence.connect(req.route, req.takeover) };
    },
    disconnect: async (req) => {
      if (req.route) await presence.disconnect(req.route);
      return {};
    },
    heartbeat: async (req) => {
      await presence.heartbeat(req.routes);
      return {};
    },
    getRoutes: async (req) => ({ routes: await presence.routes(req.userIds) }),
    query: async (req) => {
      checkCount(req.userIds);
      return { users: await presence.query(req.userIds) };
    },
    subscribe: async (req) => {
      checkCount(req.userIds);
      if (!req.subscriber) throw ChatError.invalid("subscriber is required");
      return { users: await presence.subscribe(req.subscriber, req.userIds) };
    },
  };
}
