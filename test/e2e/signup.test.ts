import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, warnOnFailure, type TestCluster } from "./harness.js";
import { sleep } from "../../internal/run/sleep.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster(); });
afterAll(async () => { await c?.stop(); });

interface Reply {
  status: number;
  body: { user_id?: string; token?: string; code?: string; message?: string; retryable?: boolean; retry_after_ms?: number };
}

async function post(kind: "signup" | "login", username: string, password: string): Promise<Reply> {
  const res = await fetch(`${c.httpUrl}/v1/${kind}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password }) });
  return { status: res.status, body: (await res.json()) as Reply["body"] };
}

/** What an internal address or a grpc-js text looks like in a message. */
const INTERNAL_DETAIL = /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|remote_addr|ECONNREFUSED|No connection established|Deadline exceeded after|:\d{4,5}\b/;

describe("signup (safe to retry)", () => {
  it("answers 40 concurrent signups with success or a clear error, and a retry of any retryable reply succeeds without 409", async () => {
    warnOnFailure(() => c);
    const password = "correct horse battery";
    const names = Array.from({ length: 40 }, (_, i) => `burst${i}x${randomUUID().slice(0, 8)}`);
    const first = await Promise.all(names.map((n) => post("signup", n, password)));
    const retried: string[] = [];
    const userIds = new Map<string, string>();
    // Retries of one name run in turn, names in parallel (as 40 separate clients would).
    await Promise.all(first.map(async (r, i) => {
      const name = names[i]!;
      if (r.status === 201) { userIds.set(name, r.body.user_id!); return; }
      // Not a success: either a clear refusal that changed nothing, or a retryable one whose retry works.
      expect(r.body.message ?? "").not.toMatch(INTERNAL_DETAIL);
      expect(r.body.code).not.toBe("ERROR_CODE_INTERNAL");
      expect(r.body.code).not.toBe("ERROR_CODE_ALREADY_EXISTS");
      if (!r.body.retryable) return;
      retried.push(name);
      let reply = r;
      for (let attempt = 0; attempt < 20 && reply.status !== 201; attempt++) {
        // Retryable means "send it again": whatever the first attempt did, the resend is not a 409.
        if (reply.body.retry_after_ms) await sleep(reply.body.retry_after_ms);
        reply = await post("signup", name, password);
        expect(reply.status, JSON.stringify(reply.body)).not.toBe(409);
        if (reply.status !== 201) expect(reply.body.retryable, JSON.stringify(reply.body)).toBe(true);
      }
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      userIds.set(name, reply.body.user_id!);
    }));
    expect(userIds.size).toBe(names.length - first.filter((r) => r.status !== 201 && !r.body.retryable).length);
    // Every account that a reply reported is the one that logs in: one account per name.
    for (const [name, id] of userIds) {
      const login = await post("login", name, password);
      expect(login.status).toBe(200);
      expect(login.body.user_id).toBe(id);
    }
    process.stderr.write(`signup burst: ${first.filter((r) => r.status === 201).length} created at once, ${retried.length} retried\n`);
  });

  it("a resend with the same password returns the same account and a fresh token; another password is refused", async () => {
    const name = `again${randomUUID().slice(0, 8)}`;
    const a = await post("signup", name, "correct horse battery");
    expect(a.status).toBe(201);
    const b = await post("signup", name, "correct horse battery");
    expect(b.status).toBe(201);
    expect(b.body.user_id).toBe(a.body.user_id);
    expect(b.body.token).toBeTruthy();
    const other = await post("signup", name, "another long password");
    expect(other.status).toBe(409);
    expect(other.body.retryable).toBe(false);
  });

  it("an UNAVAILABLE reply names no internal address", async () => {
    await c.cluster.stop("chat", "SIGKILL");
    try {
      const r = await post("signup", `down${randomUUID().slice(0, 8)}`, "correct horse battery");
      expect(r.status).toBe(503);
      expect(r.body.code).toBe("ERROR_CODE_UNAVAILABLE");
      expect(r.body.retryable).toBe(true);
      expect(r.body.message).not.toMatch(INTERNAL_DETAIL);
    } finally {
      await c.cluster.start({ name: "chat", service: "chat", env: c.env });
    }
  });
});
