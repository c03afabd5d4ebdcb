import { afterEach, describe, expect, it } from "vitest";
import { loadCommon } from "./config.js";
import { ConfigError } from "./env.js";

describe("common configuration", () => {
  const env = { ...process.env };
  afterEach(() => { process.env = { ...env }; });

  it("refuses plaintext without caller checks on the production profile unless a sidecar does mTLS", () => {
    Object.assign(process.env, { PROFILE: "production", TLS_ENABLED: "false" });
    delete process.env.MESH_SIDECAR;
    expect(() => loadCommon("edge", 7101)).toThrow(ConfigError);
    process.env.MESH_SIDECAR = "true";
    expect(loadCommon("edge", 7101).tls).toBe(false);
  });
});
