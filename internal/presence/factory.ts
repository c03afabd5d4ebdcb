import type { CommonConfig } from "../config/config.js";
import { oneOf, str, unknownChoice } from "../config/env.js";
import { MemoryPresence } from "./presence-memory.js";
import { RedisPresence } from "./presence-redis.js";
import type { Presence, PresenceConfig, PublishFn } from "./presence.js";

export const PRESENCE_BACKENDS = ["memory", "redis"] as const;
export type PresenceBackend = (typeof PRESENCE_BACKENDS)[number];

/** PRESENCE_BACKEND: memory (embedded default, one presence process) or redis (PRESENCE_REDIS_URL, any number of them). */
export function presenceBackend(config: CommonConfig): PresenceBackend {
  return oneOf("PRESENCE_BACKEND", config.profile === "embedded" ? "memory" : "redis", PRESENCE_BACKENDS);
}

export async function openPresence(
  config: CommonConfig,
  presenceConfig: PresenceConfig,
  publish: PublishFn,
  onError?: (what: string, err: unknown) => void,
): Promise<Presence> {
  const backend = presenceBackend(config);
  switch (backend) {
    case "memory":
      return new MemoryPresence(presenceConfig, publish);
    case "redis":
      // PRESENCE_REDIS_URL (default REDIS_URL): presence may have a Redis Cluster of its own
      // (redis+cluster://...), the largest state at scale, while the rest stays on one Redis.
      return RedisPresence.open(presenceConfig, publish, { url: str("PRESENCE_REDIS_URL", config.redisUrl), prefix: config.redisPrefix, onError });
    default:
      return unknownChoice("presence backend", backend);
  }
}
