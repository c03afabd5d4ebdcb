import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDevCerts } from "./dev-certs.js";
import { cachePeerCertificates } from "./peer-identity.js";

describe("peer certificates cached per connection", () => {
  const dir = path.join(os.tmpdir(), "meshchat-peer-certs");
  const read = (n: string) => fs.readFileSync(path.join(dir, n));
  let server: tls.Server;
  let port = 0;
  const seen: Array<{ first: tls.PeerCertificate; second: tls.PeerCertificate }> = [];

  beforeAll(async () => {
    ensureDevCerts(dir);
    cachePeerCertificates();
    server = tls.createServer({ key: read("chat-key.pem"), cert: read("chat.pem"), ca: read("ca.pem"), requestCert: true, rejectUnauthorized: true }, (socket) => {
      seen.push({ first: socket.getPeerCertificate(), second: socket.getPeerCertificate() });
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const connect = (name: string) => new Promise<void>((resolve, reject) => {
    const s = tls.connect({ port, host: "127.0.0.1", servername: "chat", key: read(`${name}-key.pem`), cert: read(`${name}.pem`), ca: read("ca.pem") });
    s.on("error", reject).on("close", () => resolve()).resume();
  });

  it("answers the same certificate for a connection and each connection's own", async () => {
    await connect("edge");
    await connect("presence");
    expect(seen).toHaveLength(2);
    for (const s of seen) expect(s.second).toBe(s.first);
    expect(seen.map((s) => s.first.subjectaltname)).toEqual([expect.stringContaining("spiffe://meshchat.local/edge"), expect.stringContaining("spiffe://meshchat.local/presence")]);
  });
});
