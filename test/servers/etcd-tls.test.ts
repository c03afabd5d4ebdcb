import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdDiscovery } from "../../internal/discovery/discovery-etcd.js";
import { EtcdKeyspace } from "../../internal/discovery/etcd-keyspace.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { freePort } from "../../internal/launcher/cluster.js";
import { Logger } from "../../internal/log/logger.js";
import { waitFor } from "../support/wait.js";
import { TEST_CERTS } from "../e2e/harness.js";

const log = new Logger("test", "error");

/**
 * A second etcd (the Debian server the suite installs) that only speaks TLS and
 * only to clients with a certificate of the mesh CA: what the manifests run.
 */
describe("etcd with TLS and client certificates (real etcd)", () => {
  let etcd: ChildProcess;
  let endpoint: string;
  const cert = (n: string) => path.join(TEST_CERTS, n);

  beforeAll(async () => {
    ensureDevCerts(TEST_CERTS);
    const [port, peer] = [await freePort(), await freePort()];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "etcd-tls-"));
    endpoint = `https://127.0.0.1:${port}`;
    etcd = spawn("etcd", [
      "--name", "tls", "--data-dir", dir,
      "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
      "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-cluster", `tls=http://127.0.0.1:${peer}`,
      "--cert-file", cert("message-store.pem"), "--key-file", cert("message-store-key.pem"),
      "--client-cert-auth", "--trusted-ca-file", cert("ca.pem"),
    ], { stdio: "ignore" });
    const accepts = () => new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    await waitFor("etcd listening with TLS", accepts);
  });
  afterAll(() => { etcd?.kill("SIGKILL"); });

  it("registers over TLS with a mesh client certificate", async () => {
    const d = await EtcdDiscovery.open(await EtcdKeyspace.open({ endpoints: [endpoint], prefix: "/tls-test/", leaseTtlSeconds: 2, access: { caFile: cert("ca.pem"), certFile: cert("chat.pem"), keyFile: cert("chat-key.pem"), serverName: "message-store" } }, log));
    try {
      await d.register("chat", { id: "chat-tls", address: "127.0.0.1:1" });
      await waitFor("the instance visible", () => d.instances("chat").some((i) => i.id === "chat-tls"));
    } finally {
      await d.close();
    }
  });

  it("is refused without a client certificate", async () => {
    const err = await EtcdKeyspace.open({ endpoints: [endpoint], prefix: "/tls-test/", leaseTtlSeconds: 2, access: { caFile: cert("ca.pem"), serverName: "message-store" } }, log).then(
      async (space) => { await space.close(); return undefined; },
      (e: unknown) => e,
    );
    expect(err).toBeDefined();
  });
});
