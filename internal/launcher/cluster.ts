import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { devAuthKeyEnv } from "../auth/keys.js";
import { serviceEnv, serviceNodeArgs } from "./node-flags.js";

export type ServiceName = "edge" | "chat" | "presence" | "message-store" | "notifier";

export interface ProcessSpec {
  /** Unique name, e.g. "chat-2". */
  name: string;
  service: ServiceName;
  env: Record<string, string>;
  /**
   * A command the service's node runs under, e.g. ["ip", "netns", "exec", "h1"] to put it on
   * another network "host" (test/e2e/netns.test.ts). It must exec the node it is given, so
   * signals sent to the child reach the service.
   */
  wrapper?: string[];
}

export interface RunningProcess {
  spec: ProcessSpec;
  child: ChildProcess;
  exited: Promise<number | null>;
}

// This file runs compiled (dist/internal/launcher) or from source under the test runner.
const HERE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const DIST_ROOT = path.basename(HERE_ROOT) === "dist" ? HERE_ROOT : path.join(HERE_ROOT, "dist");

/** The compiled entry point of a service. */
export function entryPoint(service: ServiceName): string {
  return path.join(DIST_ROOT, "cmd", service, "main.js");
}

const taken = new Set<number>();

function tryBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on loopback, below the kernel's ephemeral range (32768+): a port
 * from that range can be taken as the source port of an outgoing connection
 * between this check and the service binding it.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port) || taken.has(port + 2_000)) continue;
    if (await tryBind(port, host)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error("no free port found");
}

export interface Ports {
  edgeHttp: number;
  edge: number;
  chat: number;
  presence: number;
  store: number;
  notifier: number;
}

/** The environment shared by every process of one embedded cluster. */
export function clusterEnv(dataDir: string, ports: Ports, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    // One token key pair for every instance (the production profile requires it to be configured).
    ...devAuthKeyEnv(dataDir),
    CHAT_ADDRS: `127.0.0.1:${ports.chat}`,
    STORE_ADDRS: `127.0.0.1:${ports.store}`,
    PRESENCE_ADDRS: `127.0.0.1:${ports.presence}`,
    NOTIFIER_ADDRS: `127.0.0.1:${ports.notifier}`,
    EDGE_HTTP_PORT: String(ports.edgeHttp),
    EDGE_GRPC_PORT: String(ports.edge),
    CHAT_GRPC_PORT: String(ports.chat),
    PRESENCE_GRPC_PORT: String(ports.presence),
    STORE_GRPC_PORT: String(ports.store),
    NOTIFIER_GRPC_PORT: String(ports.notifier),
    ...extra,
  };
}

/** The five services of the embedded profile, in start order (dependencies first). */
export function embeddedSpecs(env: Record<string, string>): ProcessSpec[] {
  return (["message-store", "presence", "notifier", "chat", "edge"] as const).map((service) => ({ name: service, service, env }));
}

/** Extra instances beyond one of each: ports of every edge and chat instance. */
export interface Layout {
  edges: Array<{ http: number; grpc: number }>;
  chats: number[];
}

/**
 * One store, presence and notifier, then each chat and each edge as its own
 * process with its own ports and instance id (the production cluster on one box).
 */
export function layoutSpecs(env: Record<string, string>, layout: Layout): ProcessSpec[] {
  const chatAddrs = layout.chats.map((p) => `127.0.0.1:${p}`).join(",");
  const shared = { ...env, CHAT_ADDRS: chatAddrs };
  const base = (["message-store", "presence", "notifier"] as const).map((service) => ({ name: service, service, env: shared }));
  const chats = layout.chats.map((port, i): ProcessSpec => ({ name: `chat-${i + 1}`, service: "chat", env: { ...shared, CHAT_GRPC_PORT: String(port), INSTANCE_ID: `chat-${i + 1}` } }));
  const edges = layout.edges.map((e, i): ProcessSpec => ({
    name: `edge-${i + 1}`,
    service: "edge",
    env: { ...shared, EDGE_HTTP_PORT: String(e.http), EDGE_GRPC_PORT: String(e.grpc), INSTANCE_ID: `edge-${i + 1}` },
  }));
  return [...base, ...chats, ...edges];
}

/**
 * Starts service processes and waits for each to log that it is ready. Output
 * is passed to `onLine` prefixed with the process name.
 */
export class Cluster {
  readonly processes = new Map<string, RunningProcess>();

  constructor(private readonly onLine: (name: string, line: string) => void = () => {}) {}

  async start(spec: ProcessSpec, timeoutMs = 60_000): Promise<RunningProcess> {
    // NODE_ARGS: extra flags for the service's node (e.g. --cpu-prof, which NODE_OPTIONS refuses).
    const argv = [process.execPath, ...serviceNodeArgs(entryPoint(spec.service), spec.env.NODE_ARGS)];
    const [command, ...args] = [...(spec.wrapper ?? []), ...argv] as [string, ...string[]];
    const child = spawn(command, args, {
      env: { ...serviceEnv(spec.service), ...process.env, ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const running: RunningProcess = { spec, child, exited };
    this.processes.set(spec.name, running);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${spec.name} not ready after ${timeoutMs} ms`)), timeoutMs);
      let buf = "";
      const onData = (chunk: Buffer) => {
        buf += chunk.toString("utf8");
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.onLine(spec.name, line);
          if (line.includes(`"msg":"${spec.service} ready"`)) { clearTimeout(timer); resolve(); }
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`${spec.name} exited with ${code} before it was ready`)); });
    });
    return running;
  }

  async startAll(specs: ProcessSpec[]): Promise<void> {
    for (const s of specs) await this.start(s);
  }

  /** SIGTERM (drain) or SIGKILL (crash) one process and wait for it to exit. */
  async stop(name: string, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<number | null> {
    const p = this.processes.get(name);
    if (!p) return null;
    this.processes.delete(name);
    if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
    p.child.kill(signal);
    const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
    const code = await p.exited;
    clearTimeout(timer);
    return code;
  }

  async restart(name: string, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const p = this.processes.get(name);
    if (!p) throw new Error(`no process ${name}`);
    await this.stop(name, signal);
    await this.start(p.spec);
  }

  /** Stops everything, edges first (reverse start order). */
  async stopAll(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    for (const name of [...this.processes.keys()].reverse()) await this.stop(name, signal);
  }
}
