import path from "node:path";
import { ensureDevAuthKeys } from "../../internal/auth/keys.js";
import { DEFAULT_PORTS } from "../../internal/config/config.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { Cluster, clusterEnv, embeddedSpecs } from "../../internal/launcher/cluster.js";

/**
 * `meshchat up`: the whole product on the embedded default, five processes on
 * loopback, data under ./var. Ctrl-C drains and stops them all.
 */
const dataDir = path.resolve(process.env.DATA_DIR ?? "var");
const verbose = process.argv.includes("--verbose");
ensureDevAuthKeys(dataDir);
// Every internal hop is mutual TLS; the first run makes a development CA and certificates.
ensureDevCerts(process.env.CERTS_DIR ?? path.join(dataDir, "certs"));
const ports = {
  edgeHttp: Number(process.env.EDGE_HTTP_PORT ?? DEFAULT_PORTS.edgeHttp),
  edge: DEFAULT_PORTS.edge,
  chat: DEFAULT_PORTS.chat,
  presence: DEFAULT_PORTS.presence,
  store: DEFAULT_PORTS.store,
  notifier: DEFAULT_PORTS.notifier,
};
const cluster = new Cluster((name, line) => {
  if (verbose || /"level":"(warn|error)"/.test(line) || !line.startsWith("{")) process.stdout.write(`${name.padEnd(14)}| ${line}\n`);
});
const env = clusterEnv(dataDir, ports, { PROFILE: process.env.PROFILE ?? "embedded" });
let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nstopping...\n");
  await cluster.stopAll("SIGTERM");
  process.exit(0);
};
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
try {
  for (const spec of embeddedSpecs(env)) {
    const t0 = Date.now();
    await cluster.start(spec);
    process.stdout.write(`started ${spec.name.padEnd(14)} (${Date.now() - t0} ms)\n`);
  }
} catch (err) {
  process.stderr.write(`failed to start: ${(err as Error).message}\n`);
  await cluster.stopAll("SIGKILL");
  process.exit(1);
}
process.stdout.write(`
meshchat is running (embedded profile, data in ${dataDir})
  web client   http://127.0.0.1:${ports.edgeHttp}/
  WebSocket    ws://127.0.0.1:${ports.edgeHttp}/v1/ws
  HTTP API     POST http://127.0.0.1:${ports.edgeHttp}/v1/signup | /v1/login
  CLI          node dist/cmd/chatctl/main.js --help
Ctrl-C to stop.
`);
for (const p of cluster.processes.values()) {
  void p.exited.then((code) => {
    if (!stopping) {
      process.stderr.write(`${p.spec.name} exited unexpectedly (${code}); stopping\n`);
      void shutdown();
    }
  });
}
