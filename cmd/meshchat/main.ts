import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { ensureDevAuthKeys } from "../../internal/auth/keys.js";
import { DEFAULT_PORTS } from "../../internal/config/config.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { Cluster, clusterEnv, embeddedSpecs, layoutSpecs } from "../../internal/launcher/cluster.js";

/**
 * `meshchat`: the whole product on one machine. By default the embedded
 * profile, five processes on loopback, data under ./var. With --edges/--chats
 * it runs several edge and chat instances (the production cluster: set
 * PROFILE=production and the server settings of scripts/servers/env.sh).
 * Ctrl-C drains and stops them all.
 */
const count = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new InvalidArgumentError("expected 1-9");
  return n;
};
const opts = new Command("meshchat")
  .option("--edges <n>", "edge instances (HTTP ports EDGE_HTTP_PORT, +1, ...)", count, 1)
  .option("--chats <n>", "chat instances (gRPC ports 7201, 7202, ...)", count, 1)
  .option("--verbose", "print every log line")
  .parse()
  .opts<{ edges: number; chats: number; verbose?: boolean }>();

const dataDir = path.resolve(process.env.DATA_DIR ?? "var");
const profile = process.env.PROFILE ?? "embedded";
ensureDevAuthKeys(dataDir);
// Every internal hop is mutual TLS; the first run makes a development CA and certificates.
ensureDevCerts(process.env.CERTS_DIR ?? path.join(dataDir, "certs"));
const httpBase = Number(process.env.EDGE_HTTP_PORT ?? DEFAULT_PORTS.edgeHttp);
const ports = {
  edgeHttp: httpBase,
  edge: DEFAULT_PORTS.edge,
  chat: DEFAULT_PORTS.chat,
  presence: DEFAULT_PORTS.presence,
  store: DEFAULT_PORTS.store,
  notifier: DEFAULT_PORTS.notifier,
};
const cluster = new Cluster((name, line) => {
  if (opts.verbose || /"level":"(warn|error)"/.test(line) || !line.startsWith("{")) process.stdout.write(`${name.padEnd(14)}| ${line}\n`);
});
const env = clusterEnv(dataDir, ports, { PROFILE: profile });
const layout = {
  edges: Array.from({ length: opts.edges }, (_, i) => ({ http: httpBase + i, grpc: DEFAULT_PORTS.edge + i })),
  chats: Array.from({ length: opts.chats }, (_, i) => DEFAULT_PORTS.chat + i),
};
const specs = opts.edges === 1 && opts.chats === 1 ? embeddedSpecs(env) : layoutSpecs(env, layout);
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
  for (const spec of specs) {
    const t0 = Date.now();
    await cluster.start(spec);
    process.stdout.write(`started ${spec.name.padEnd(14)} (${Date.now() - t0} ms)\n`);
  }
} catch (err) {
  process.stderr.write(`failed to start: ${(err as Error).message}\n`);
  await cluster.stopAll("SIGKILL");
  process.exit(1);
}
const edgeLines = layout.edges.map((e, i) => `  edge-${i + 1}       web http://127.0.0.1:${e.http}/   WebSocket ws://127.0.0.1:${e.http}/v1/ws`).join("\n");
process.stdout.write(`
meshchat is running (${profile} profile, ${opts.edges} edge(s), ${opts.chats} chat instance(s), data in ${dataDir})
${edgeLines}
  HTTP API     POST http://127.0.0.1:${httpBase}/v1/signup | /v1/login
  CLI          node dist/cmd/chatctl/main.js --help   (--server picks the edge)
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
