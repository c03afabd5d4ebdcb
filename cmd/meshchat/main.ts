import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_PORTS } from "../../internal/config/config.js";
import { int } from "../../internal/config/env.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { Cluster, clusterEnv, embeddedSpecs, layoutSpecs, type RunningProcess } from "../../internal/launcher/cluster.js";
import { DEFAULT_RESTART_POLICY, RestartPolicy } from "../../internal/launcher/supervisor.js";
import { sleep } from "../../internal/run/sleep.js";

/**
 * `meshchat`: the whole product on one machine. By default the embedded
 * profile, five processes on loopback, data under ./var. With --edges/--chats
 * it runs several edge and chat instances (the production cluster: set
 * PROFILE=production and the server settings of scripts/servers/env.sh).
 * A service that dies is restarted with back-off (internal/launcher/supervisor.ts).
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
// Every internal hop is mutual TLS; the first run makes a development CA and certificates.
ensureDevCerts(process.env.CERTS_DIR ?? path.join(dataDir, "certs"));
// Each port from the environment (the README's settings), the defaults otherwise: two launchers with
// different ports and data directories run side by side.
const portOf = (name: string, def: number) => int(name, def, 0, 65535);
const ports = {
  edgeHttp: portOf("EDGE_HTTP_PORT", DEFAULT_PORTS.edgeHttp),
  edge: portOf("EDGE_GRPC_PORT", DEFAULT_PORTS.edge),
  chat: portOf("CHAT_GRPC_PORT", DEFAULT_PORTS.chat),
  presence: portOf("PRESENCE_GRPC_PORT", DEFAULT_PORTS.presence),
  store: portOf("STORE_GRPC_PORT", DEFAULT_PORTS.store),
  notifier: portOf("NOTIFIER_GRPC_PORT", DEFAULT_PORTS.notifier),
};
const restartPolicy = new RestartPolicy({
  baseDelayMs: int("RESTART_BASE_DELAY_MS", DEFAULT_RESTART_POLICY.baseDelayMs, 0),
  maxDelayMs: int("RESTART_MAX_DELAY_MS", DEFAULT_RESTART_POLICY.maxDelayMs, 0),
  maxCrashes: int("RESTART_MAX_CRASHES", DEFAULT_RESTART_POLICY.maxCrashes, 1),
  windowMs: int("RESTART_WINDOW_MS", DEFAULT_RESTART_POLICY.windowMs, 1),
});
const cluster = new Cluster((name, line) => {
  if (opts.verbose || /"level":"(warn|error)"/.test(line) || !line.startsWith("{")) process.stdout.write(`${name.padEnd(14)}| ${line}\n`);
});
const env = clusterEnv(dataDir, ports, { PROFILE: profile });
// What the environment sets wins over what the launcher derives (an explicit *_ADDRS, key files...).
for (const key of Object.keys(env)) {
  const v = process.env[key];
  if (v !== undefined && v !== "") env[key] = v;
}
const layout = {
  edges: Array.from({ length: opts.edges }, (_, i) => ({ http: ports.edgeHttp + i, grpc: ports.edge + i })),
  chats: Array.from({ length: opts.chats }, (_, i) => ports.chat + i),
};
const specs = opts.edges === 1 && opts.chats === 1 ? embeddedSpecs(env) : layoutSpecs(env, layout);
let stopping = false;
const shutdown = async (code: number) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nstopping...\n");
  await cluster.stopAll("SIGTERM");
  process.exit(code);
};
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

/** Restarts a service that died, per the policy; gives up (and exits 1) on one that keeps dying. */
function supervise(p: RunningProcess): void {
  void p.exited.then(async (code) => {
    if (stopping || cluster.processes.get(p.spec.name) !== p) return; // stopped on purpose
    const decision = restartPolicy.onCrash(p.spec.name);
    if (!decision.restart) {
      process.stderr.write(`${p.spec.name} exited (${code ?? p.child.signalCode}) ${decision.crashes} times within ${restartPolicy.windowMs / 1000} s: giving up, stopping everything\n`);
      await shutdown(1);
      return;
    }
    process.stderr.write(`${p.spec.name} exited unexpectedly (${code ?? p.child.signalCode}); restarting in ${decision.delayMs} ms (crash ${decision.crashes})\n`);
    await sleep(decision.delayMs);
    if (stopping) return;
    try {
      supervise(await cluster.start(p.spec));
      process.stdout.write(`restarted ${p.spec.name}\n`);
    } catch (err) {
      process.stderr.write(`${p.spec.name} failed to restart: ${(err as Error).message}\n`);
      // start() left the failed process registered: its exit counts as the next crash.
      const again = cluster.processes.get(p.spec.name);
      if (again) supervise(again);
    }
  });
}

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
  HTTP API     POST http://127.0.0.1:${ports.edgeHttp}/v1/signup | /v1/login | /v1/refresh | /v1/logout | /v1/password
  CLI          node dist/cmd/chatctl/main.js --help   (--server picks the edge)
Ctrl-C to stop. A service that dies is restarted; one that keeps dying stops the launcher (exit 1).
`);
for (const p of cluster.processes.values()) supervise(p);
