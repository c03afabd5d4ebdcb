import { describe, expect, it } from "vitest";
import { ConfigError } from "../config/env.js";
import { RedisPresence } from "./presence-redis.js";

describe("RedisPresence configuration", () => {
  it("refuses a REDIS_PREFIX with a brace at start: it would be every key's hash tag, one slot for all users", async () => {
    const opening = RedisPresence.open({ timeoutMs: 1_000, graceMs: 400 }, () => {}, { url: "redis://127.0.0.1:1", prefix: "chat{eu}:" });
    await expect(opening).rejects.toBeInstanceOf(ConfigError);
  });
});
