import { describe, expect, it } from "vitest";
import { ConfigError } from "../config/env.js";
import { parseClusterUrl, redisClient, throttledReporter } from "./client.js";

describe("parseClusterUrl", () => {
  it("reads the seed nodes, credentials and TLS of a redis+cluster:// URL", () => {
    expect(parseClusterUrl("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,redis-2.svc:7002/")).toEqual({
      nodes: [{ host: "127.0.0.1", port: 7000 }, { host: "127.0.0.1", port: 7001 }, { host: "redis-2.svc", port: 7002 }],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(parseClusterUrl("rediss+cluster://app:p%40ss@[::1]:7000")).toEqual({ nodes: [{ host: "::1", port: 7000 }], username: "app", password: "p@ss", tls: true });
    expect(parseClusterUrl("redis+cluster://:secret@h:1")).toMatchObject({ username: undefined, password: "secret" });
  });

  it("leaves every other URL to ioredis as one Redis", () => {
    expect(parseClusterUrl("redis://127.0.0.1:63790")).toBeUndefined();
    expect(parseClusterUrl("rediss://:pw@host:6380/2")).toBeUndefined();
  });

  it("refuses a malformed cluster URL at boot, without echoing its password", () => {
    for (const bad of ["redis+cluster://", "redis+cluster://h", "redis+cluster://h:0", "redis+cluster://h:1,,h:2", "redis+cluster://u:secret@h:x"]) {
      const err = (() => { try { parseClusterUrl(bad); } catch (e) { return e; } })();
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain("secret");
    }
  });

  it("redisClient refuses a cluster URL: its callers need one Redis", () => {
    expect(() => redisClient("redis+cluster://127.0.0.1:7000", { report: throttledReporter(() => {}), lazyConnect: true })).toThrow(ConfigError);
  });
});
