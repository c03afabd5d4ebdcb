import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionTokens } from "../client/client.js";
import { SessionFile } from "./session-file.js";

/**
 * A stand-in for the edge's /v1/refresh with the server's rule: each refresh token
 * works once; presenting a spent one ends the session. Only the rule is faked: the
 * real endpoint is exercised end to end in test/e2e/sessions.test.ts.
 */
let server: http.Server;
let base = "";
let current = "r0";
let ended = false;
let refreshes = 0;
const tokens = (refreshToken: string): SessionTokens => ({ userId: "u", username: "ann", token: `a-${refreshToken}`, expiresAtMs: 0, refreshToken, refreshExpiresAtMs: 0, sessionId: "s" });

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const presented = (JSON.parse(body) as { refresh_token: string }).refresh_token;
      if (ended || presented !== current) {
        ended = true;
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ code: "ERROR_CODE_SESSION_ENDED", message: "reused" }));
        return;
      }
      refreshes++;
      current = `r${refreshes}`;
      // Slow enough that the two callers below overlap.
      setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ user_id: "u", username: "ann", token: `a-${current}`, expires_at_ms: Date.now() + 60_000, refresh_token: current, session_id: "s" })), 50);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("SessionFile", () => {
  it("two processes sharing the file refresh once between them, never presenting a spent token", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chatctl-"));
    const shared = new SessionFile(path.join(dir, "ann.session.json"));
    shared.write(tokens("r0"));
    // Two chatctl processes: each loaded the tokens before either refreshed (expired: expiresAtMs 0).
    const [tail, send] = [shared.session(base)!, new SessionFile(shared.file).session(base)!];
    const got = await Promise.all([tail.accessToken(), send.accessToken()]);
    expect(ended).toBe(false);
    expect(refreshes).toBe(1);
    expect(got).toEqual(["a-r1", "a-r1"]);
    expect(shared.read()!.refreshToken).toBe("r1");
    expect(fs.statSync(shared.file).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(`${shared.file}.lock`)).toBe(false);
  });
});
