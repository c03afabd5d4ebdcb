import fs from "node:fs";
import path from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeDeliveryServiceClient } from "../../gen/chat/internal/v1/edge.js";
import { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { startCluster, TEST_CERTS, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster(); });
afterAll(async () => { await c?.stop(); });

const file = (n: string) => fs.readFileSync(path.join(TEST_CERTS, n));

function edgeClient(c2: ReturnType<typeof credentials.createSsl>): EdgeDeliveryServiceClient {
  return new EdgeDeliveryServiceClient(`127.0.0.1:${c.ports.edge}`, c2, { "grpc.ssl_target_name_override": "edge" });
}

/** A message-store client presenting `identity`'s certificate (or none). */
function storeClient(creds: ReturnType<typeof credentials.createSsl>): MessageStoreServiceClient {
  return new MessageStoreServiceClient(`127.0.0.1:${c.ports.store}`, creds, { "grpc.ssl_target_name_override": "message-store" });
}

type Unary<Req> = (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null) => void) => unknown;

/** One call, then the client is closed: the error (null on success). */
function once<C extends { close(): void }, Req>(client: C, method: (c: C) => Unary<Req>, req: Req): Promise<ServiceError | null> {
  return new Promise((resolve) => method(client).call(client, req, new Metadata(), { deadline: Date.now() + 3_000 }, (err) => { client.close(); resolve(err); }));
}

/** The edge's read of a user's conversations: a method the edge may call. */
const listConversations = (client: MessageStoreServiceClient) => once(client, (x) => x.listConversations, { userId: "00000000-0000-0000-0000-000000000000" });
const creds = (who: string) => credentials.createSsl(file("ca.pem"), file(`${who}-key.pem`), file(`${who}.pem`));

describe("mutual TLS between services", () => {
  it("lets a service that should call the store in", async () => {
    const err = await listConversations(storeClient(creds("edge")));
    expect(err).toBeNull();
  });

  it("lets each caller call only the methods it needs (least privilege per method)", async () => {
    // The edge reads for users it authenticated; it may not read password hashes, write messages or make users.
    const denied: Array<[string, Promise<ServiceError | null>]> = [
      ["edge GetUserByName", once(storeClient(creds("edge")), (x) => x.getUserByName, { username: "alice" })],
      ["edge Append", once(storeClient(creds("edge")), (x) => x.append, { groups: [] })],
      ["edge CreateUser", once(storeClient(creds("edge")), (x) => x.createUser, { user: undefined })],
      ["chat GetUsers", once(storeClient(creds("chat")), (x) => x.getUsers, { ids: [] })],
      // Sessions and passwords are the accounts service's: the edge may only ask whether a session is live.
      ["edge SetPassword", once(storeClient(creds("edge")), (x) => x.setPassword, { userId: "u", passwordHash: "x", keepSessionId: "", nowMs: 0 })],
      ["edge RotateSession", once(storeClient(creds("edge")), (x) => x.rotateSession, { sessionId: "s", presentedHash: Buffer.alloc(0), nextHash: Buffer.alloc(0), nowMs: 0, nextExpiresAtMs: 0 })],
      // Presence delivers presence updates to edges; it may not close sessions.
      ["presence Kick", once(edgeClient(creds("presence")), (x) => x.kick, { userId: "u", deviceId: "d", sessionId: "s" })],
    ];
    for (const [what, p] of denied) {
      const err = await p;
      expect(err?.code, what).toBe(status.PERMISSION_DENIED);
      expect(err?.details, what).toContain(what.split(" ")[1]);
    }
    // The same methods for the caller that needs them: past the policy (the store answers NOT_FOUND for nobody).
    const err = await once(storeClient(creds("chat")), (x) => x.getUserByName, { username: "nobody-at-all" });
    expect(err?.code).not.toBe(status.PERMISSION_DENIED);
  });

  it("refuses a client without a certificate at the handshake", async () => {
    const err = await listConversations(storeClient(credentials.createSsl(file("ca.pem"))));
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it("refuses a certificate from another CA at the handshake", async () => {
    const err = await listConversations(storeClient(credentials.createSsl(file("ca.pem"), file("rogue-edge-key.pem"), file("rogue-edge.pem"))));
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it("refuses a mesh certificate with the wrong identity with PERMISSION_DENIED", async () => {
    for (const who of ["intruder", "notifier", "presence"]) {
      const err = await listConversations(storeClient(credentials.createSsl(file("ca.pem"), file(`${who}-key.pem`), file(`${who}.pem`))));
      expect(err?.code, who).toBe(status.PERMISSION_DENIED);
      expect(err?.details).toContain(who);
    }
  });

  it("keeps the CA's private key out of the folder the services read", () => {
    const files = fs.readdirSync(TEST_CERTS);
    expect(files).toContain("edge-key.pem");
    expect(files.filter((f) => f.endsWith("-ca-key.pem"))).toEqual([]);
  });

  it("does not accept a plaintext connection", async () => {
    const client = new MessageStoreServiceClient(`127.0.0.1:${c.ports.store}`, credentials.createInsecure());
    const err = await listConversations(client);
    expect(err?.code).toBe(status.UNAVAILABLE);
  });
});
