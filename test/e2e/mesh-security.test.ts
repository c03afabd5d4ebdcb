import fs from "node:fs";
import path from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { startCluster, TEST_CERTS, type TestCluster } from "./harness.js";

let c: TestCluster;
beforeAll(async () => { c = await startCluster(); });
afterAll(async () => { await c?.stop(); });

const file = (n: string) => fs.readFileSync(path.join(TEST_CERTS, n));

/** A message-store client presenting `identity`'s certificate (or none). */
function storeClient(creds: ReturnType<typeof credentials.createSsl>): MessageStoreServiceClient {
  return new MessageStoreServiceClient(`127.0.0.1:${c.ports.store}`, creds, { "grpc.ssl_target_name_override": "message-store" });
}

function getUsers(client: MessageStoreServiceClient): Promise<ServiceError | null> {
  return new Promise((resolve) => client.getUsers({ ids: [] }, new Metadata(), { deadline: Date.now() + 3_000 }, (err) => { client.close(); resolve(err); }));
}

describe("mutual TLS between services", () => {
  it("lets a service that should call the store in", async () => {
    const err = await getUsers(storeClient(credentials.createSsl(file("ca.pem"), file("chat-key.pem"), file("chat.pem"))));
    expect(err).toBeNull();
  });

  it("refuses a client without a certificate at the handshake", async () => {
    const err = await getUsers(storeClient(credentials.createSsl(file("ca.pem"))));
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it("refuses a certificate from another CA at the handshake", async () => {
    const err = await getUsers(storeClient(credentials.createSsl(file("ca.pem"), file("rogue-edge-key.pem"), file("rogue-edge.pem"))));
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it("refuses a mesh certificate with the wrong identity with PERMISSION_DENIED", async () => {
    for (const who of ["intruder", "notifier", "presence"]) {
      const err = await getUsers(storeClient(credentials.createSsl(file("ca.pem"), file(`${who}-key.pem`), file(`${who}.pem`))));
      expect(err?.code, who).toBe(status.PERMISSION_DENIED);
      expect(err?.details).toContain(who);
    }
  });

  it("does not accept a plaintext connection", async () => {
    const client = new MessageStoreServiceClient(`127.0.0.1:${c.ports.store}`, credentials.createInsecure());
    const err = await getUsers(client);
    expect(err?.code).toBe(status.UNAVAILABLE);
  });
});
