import { generateKeyPairSync, randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageStoreServiceClient, MessageStoreServiceService } from "../../gen/chat/internal/v1/store.js";
import { TokenIssuer, TokenVerifier } from "../auth/tokens.js";
import { ErrorCode, type ChatError } from "../errors/chat-error.js";
import { makeClient } from "../grpc/client.js";
import { implement } from "../grpc/handler.js";
import { startGrpcServer, type RunningGrpcServer } from "../grpc/server.js";
import { Logger } from "../log/logger.js";
import { storeService } from "../store/service.js";
import { PgliteSqlClient } from "../store/sql-pglite.js";
import { SqlStore } from "../store/store-sql.js";
import { Sessions } from "./sessions.js";

// The accounts service's session rules against a real message-store service (PGlite in memory) on a free port.
let server: RunningGrpcServer;
let store: MessageStoreServiceClient;
let issuer: TokenIssuer;
let verifier: TokenVerifier;
let dir = "";
const user = { id: "00000000-0000-4000-8000-000000000001", username: "ann" };

beforeAll(async () => {
  const sql = await SqlStore.open(await PgliteSqlClient.open(":memory:"));
  await sql.createUser({ ...user, passwordHash: "x", createdAtMs: Date.now() });
  server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    credentials: ServerCredentials.createInsecure(),
    services: [{ definition: MessageStoreServiceService, implementation: implement(MessageStoreServiceService, storeService(sql), new Logger("test", "error")) }],
  });
  store = makeClient(MessageStoreServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-sessions-"));
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  fs.writeFileSync(path.join(dir, "k.pem"), privateKey.export({ type: "pkcs8", format: "pem" }));
  fs.writeFileSync(path.join(dir, "k.pub.pem"), publicKey.export({ type: "spki", format: "pem" }));
  issuer = await TokenIssuer.fromFile(path.join(dir, "k.pem"), 900);
  verifier = await TokenVerifier.fromFile(path.join(dir, "k.pub.pem"));
});
afterAll(async () => {
  store?.close();
  await server?.shutdown(1_000);
  fs.rmSync(dir, { recursive: true, force: true });
});

const refused = (p: Promise<unknown>) => p.then(() => undefined, (e: ChatError) => ({ code: e.code, message: e.message }));

describe("Sessions (accounts service)", () => {
  it("starts a session whose access token names it, and rotates its refresh token", async () => {
    const sessions = new Sessions(store, issuer, { refreshTtlSeconds: 3600 });
    const first = (await sessions.start(user, "phone")).tokens;
    expect(first.refreshExpiresAtMs).toBeGreaterThan(Date.now() + 3500_000);
    expect(await verifier.verify(first.accessToken)).toMatchObject({ userId: user.id, username: "ann", sessionId: first.sessionId });
    const second = await sessions.refresh(first.refreshToken);
    expect(second).toMatchObject({ userId: user.id, username: "ann", sessionId: first.sessionId });
    expect(second.refreshToken).not.toBe(first.refreshToken);
    await sessions.requireLive(first.sessionId);
  });

  it("ends the session when a spent refresh token comes back, and says so", async () => {
    const sessions = new Sessions(store, issuer, { refreshTtlSeconds: 3600 });
    const first = (await sessions.start(user, "phone")).tokens;
    const second = await sessions.refresh(first.refreshToken);
    expect(await refused(sessions.refresh(first.refreshToken))).toEqual({ code: ErrorCode.ERROR_CODE_SESSION_ENDED, message: expect.stringMatching(/already used/) });
    expect(await refused(sessions.refresh(second.refreshToken))).toEqual({ code: ErrorCode.ERROR_CODE_SESSION_ENDED, message: expect.stringMatching(/has ended/) });
    expect((await refused(sessions.requireLive(first.sessionId)))?.code).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
  });

  it("refuses expired, unknown and malformed refresh tokens with their own messages", async () => {
    const shortLived = new Sessions(store, issuer, { refreshTtlSeconds: 0 });
    const { tokens: t } = await shortLived.start(user, "phone");
    expect(await refused(shortLived.refresh(t.refreshToken))).toEqual({ code: ErrorCode.ERROR_CODE_SESSION_ENDED, message: expect.stringMatching(/expired/) });
    const sessions = new Sessions(store, issuer, { refreshTtlSeconds: 3600 });
    expect((await refused(sessions.refresh(`${randomUUID()}.${"A".repeat(43)}`)))?.code).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
    expect((await refused(sessions.refresh("not a token")))?.code).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
  });

  it("logout ends one session of the user, idempotently", async () => {
    const sessions = new Sessions(store, issuer, { refreshTtlSeconds: 3600 });
    const [a, b] = [(await sessions.start(user, "phone")).tokens, (await sessions.start(user, "laptop")).tokens];
    await sessions.end(user.id, a.sessionId);
    await sessions.end(user.id, a.sessionId);
    expect((await refused(sessions.refresh(a.refreshToken)))?.code).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    expect((await sessions.refresh(b.refreshToken)).sessionId).toBe(b.sessionId);
  });
});
