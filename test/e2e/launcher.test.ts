import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { authenticate, ChatClient } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { freePort } from "../../internal/launcher/cluster.js";
import { TEST_CERTS, waitFor } from "./harness.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

interface Launcher {
  child: ChildProcess;
  out: () => string;
  http: string;
  exit: Promise<number | null>;
}

const launched: Launcher[] = [];
const dataDirs: string[] = [];
afterAll(async () => {
  for (const l of launched) if (l.child.exitCode === null && l.child.signalCode === null) { l.child.kill("SIGTERM"); await l.exit; }
  for (const d of dataDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** `node dist/cmd/meshchat/main.js` (what `make run` starts) with its own ports and data directory. */
async function launch(extra: Record<string, string> = {}): Promise<Launcher> {
  ensureDevCerts(TEST_CERTS);
  fs.mkdirSync(path.join(ROOT, "var", "test"), { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(ROOT, "var", "test", "launcher-"));
  dataDirs.push(dataDir);
  const http = await freePort();
  const env: Record<string, string> = {
    DATA_DIR: dataDir, CERTS_DIR: TEST_CERTS, METRICS_PORT: "0",
    EDGE_HTTP_PORT: String(http), EDGE_GRPC_PORT: String(await freePort()), CHAT_GRPC_PORT: String(await freePort()),
    PRESENCE_GRPC_PORT: String(await freePort()), STORE_GRPC_PORT: String(await freePort()), NOTIFIER_GRPC_PORT: String(await freePort()),
    ...extra,
  };
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "cmd", "meshchat", "main.js")], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  child.stderr!.on("data", (d: Buffer) => { out += d.toString(); });
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const l = { child, out: () => out, http: `http://127.0.0.1:${http}`, exit };
  launched.push(l);
  await waitFor("meshchat is running", () => out.includes("meshchat is running") || child.exitCode !== null, { timeoutMs: 180_000, seen: () => out.slice(-2000) });
  expect(child.exitCode).toBeNull();
  return l;
}

/** The pid of the launcher's child running `service`. */
function childPid(l: Launcher, service: string): number {
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === l.child.pid && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`cmd/${service}/main.js`)) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no ${service} under launcher ${l.child.pid}`);
}

/** Signs up two users on a launcher's edge and has one send to the other; resolves with the text received. */
async function chatOn(l: Launcher, text: string): Promise<string> {
  const suffix = Math.random().toString(36).slice(2, 8);
  const [a, b] = [await authenticate(l.http, "signup", `ann${suffix}`, "correct horse battery"), await authenticate(l.http, "signup", `ben${suffix}`, "correct horse battery")];
  const ws = l.http.replace("http", "ws") + "/v1/ws";
  const ca = new ChatClient({ url: ws, token: a.token, deviceId: "a", socket: nodeSocket });
  const cb = new ChatClient({ url: ws, token: b.token, deviceId: "b", socket: nodeSocket });
  const got: string[] = [];
  cb.on("message", (m) => got.push(m.text));
  await ca.connect();
  await cb.connect();
  const conv = await ca.openDirect(b.username);
  await ca.send(conv.id, text);
  await waitFor("the message", () => got.length === 1);
  await ca.close();
  await cb.close();
  return got[0]!;
}

describe("the launcher (make run)", () => {
  it("honours its port settings: two copies run side by side, each serving its own users", async () => {
    const [one, two] = [await launch(), await launch()];
    for (const l of [one, two]) expect((await fetch(`${l.http}/healthz`)).status).toBe(200);
    expect(await chatOn(one, "on the first")).toBe("on the first");
    expect(await chatOn(two, "on the second")).toBe("on the second");
    for (const l of [one, two]) { l.child.kill("SIGTERM"); expect(await l.exit).toBe(0); }
  });

  it("restarts a service that dies, and gives up (exit 1) on one that keeps dying", async () => {
    const l = await launch({ RESTART_BASE_DELAY_MS: "100", RESTART_MAX_CRASHES: "2", RESTART_WINDOW_MS: "600000" });
    const first = childPid(l, "chat");
    process.kill(first, "SIGKILL");
    await waitFor("chat restarted", () => l.out().includes("restarted chat"), { timeoutMs: 120_000, seen: () => l.out().slice(-1500) });
    expect(childPid(l, "chat")).not.toBe(first);
    expect(await chatOn(l, "after the restart")).toBe("after the restart");
    // The second crash within the window: the launcher stops everything and says so.
    process.kill(childPid(l, "chat"), "SIGKILL");
    expect(await l.exit).toBe(1);
    expect(l.out()).toMatch(/chat exited .* 2 times within 600 s: giving up/);
  });
});
