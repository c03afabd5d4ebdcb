/**
 * A vitest reporter that turns a hung test worker into a failure with a diagnosis.
 *
 * Vitest's own timeouts run inside the worker: a worker whose event loop is blocked, or one
 * waiting where no timeout applies, never reports again, and the run waits until CI kills it
 * with nothing printed about where it stood (docs/testing.md, "When a test run hangs").
 *
 * This reporter lives in the main process, whose loop stays free. When no test or hook event
 * has arrived for `VITEST_HANG_S` seconds (default 420: longer than any hook or test timeout
 * in vitest.config.ts, so a slow test that vitest would time out itself never trips it), it
 * prints what was running; then, through each worker's inspector (SIGUSR1, then the DevTools
 * protocol, which answers on a blocked loop as on an idle one), a second's CPU profile, which
 * tells a busy loop from an idle one and names where a busy one spends its time, a sampled
 * stack and the active resources; then it kills the workers, and vitest fails the run.
 */
import { readdirSync, readFileSync } from "node:fs";
import WebSocket from "ws";
import { sleep } from "../../internal/run/sleep.js";
import type { Reporter, TestCase, TestModule } from "vitest/node";
import { waitFor } from "./wait.js";

type Hook = Parameters<NonNullable<Reporter["onHookStart"]>>[0];

const HANG_S = Number(process.env["VITEST_HANG_S"] ?? 420);
const INSPECTOR_PORT = 9229;
/** How long an inspector answer (or a pause) may take: generous, as the machine may be loaded. */
const ANSWER_MS = 15_000;
/** The CPU profile's window: a sample of what the hung worker does, not a wait for an outcome. */
const PROFILE_WINDOW_MS = 1_000;

export default class HangWatchdog implements Reporter {
  private lastEvent = Date.now();
  private readonly running = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private diagnosing = false;

  onTestRunStart(): void {
    this.lastEvent = Date.now();
    this.timer = setInterval(() => void this.check(), 5_000);
    this.timer.unref();
  }

  onTestRunEnd(): void {
    clearInterval(this.timer);
  }

  // Queued is when a worker takes the file, before its imports: a hang while collecting counts too.
  onTestModuleQueued(m: TestModule): void { this.begin(`file ${m.moduleId}`); }
  onTestModuleEnd(m: TestModule): void { this.end(`file ${m.moduleId}`); }
  onTestCaseReady(t: TestCase): void { this.begin(`test ${t.fullName}`); }
  onTestCaseResult(t: TestCase): void { this.end(`test ${t.fullName}`); }
  onHookStart(h: Hook): void { this.begin(hookName(h)); }
  onHookEnd(h: Hook): void { this.end(hookName(h)); }

  private begin(what: string): void {
    this.lastEvent = Date.now();
    this.running.set(what, Date.now());
  }

  private end(what: string): void {
    this.lastEvent = Date.now();
    this.running.delete(what);
  }

  private async check(): Promise<void> {
    if (this.diagnosing || this.running.size === 0 || Date.now() - this.lastEvent < HANG_S * 1000) return;
    this.diagnosing = true;
    try {
      const now = Date.now();
      const lines = [`[hang-watchdog] no test event for ${Math.round((now - this.lastEvent) / 1000)} s; running:`];
      for (const [what, since] of this.running) lines.push(`  ${what} (for ${Math.round((now - since) / 1000)} s)`);
      console.error(lines.join("\n"));
      for (const pid of workerPids(process.pid)) {
        console.error(`[hang-watchdog] worker ${pid}:\n${await diagnose(pid).catch((e: unknown) => `  no diagnosis: ${String(e)}`)}`);
        try { process.kill(pid, "SIGKILL"); } catch { /* gone already */ }
      }
      this.running.clear();
      this.lastEvent = Date.now();
    } finally {
      this.diagnosing = false;
    }
  }
}

function hookName(h: Hook): string {
  const e = h.entity;
  return `${h.name} of ${e.type === "module" ? e.moduleId : e.fullName}`;
}

/**
 * The test workers among the processes whose parent is `ppid` (field 4 of /proc/PID/stat, after the
 * command in parentheses): vitest titles them "node (vitest N)"; esbuild's service is a child too.
 */
function workerPids(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid && /\(vitest \d+\)/.test(readFileSync(`/proc/${d}/cmdline`, "utf8"))) out.push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** Through the worker's inspector: where a busy loop spends its time, or that the loop is idle; its active resources. */
async function diagnose(pid: number): Promise<string> {
  process.kill(pid, "SIGUSR1");
  const url = await inspectorUrl();
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => { ws.once("open", () => resolve()); ws.once("error", reject); });
  let id = 0;
  const pending = new Map<number, (r: unknown) => void>();
  let paused: ((stack: string[]) => void) | undefined;
  // A frame names its script by id; vite-node's modules are named only in Debugger.scriptParsed.
  const scripts = new Map<string, string>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; method?: string; params?: Paused & { scriptId?: string; url?: string }; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    else if (msg.method === "Debugger.scriptParsed") scripts.set(msg.params!.scriptId!, msg.params!.url!);
    else if (msg.method === "Debugger.paused") paused?.(stackLines(msg.params!, scripts));
  });
  // Every answer within ANSWER_MS, or none: the diagnosis must not hang in turn.
  const send = (method: string, params: object = {}) => new Promise<unknown>((resolve) => {
    pending.set(++id, resolve);
    setTimeout(() => resolve(undefined), ANSWER_MS).unref();
    ws.send(JSON.stringify({ id, method, params }));
  });
  try {
    // Evaluated first: a pause still pending would stop the evaluation itself. The port is the
    // default one: a stray process holding it would answer instead, so the pid is checked.
    const r = (await send("Runtime.evaluate", { expression: "JSON.stringify([process.pid, process.getActiveResourcesInfo()])", returnByValue: true })) as { result?: { value?: string } } | undefined;
    const [answeredBy, active] = JSON.parse(r?.result?.value ?? "[0, []]") as [number, string[]];
    if (answeredBy !== pid) return `  no diagnosis: port ${INSPECTOR_PORT} is answered by process ${answeredBy}, not by this worker`;
    const resources = `  active resources: ${active.join(", ")}`;
    // A CPU profile over PROFILE_WINDOW_MS first: it tells a busy loop from an idle one, and names the
    // functions a loop of microtasks spends its time in, which no sampled stack may show.
    await send("Profiler.enable");
    await send("Profiler.start");
    await sleep(PROFILE_WINDOW_MS);
    const profile = ((await send("Profiler.stop")) as { profile?: Profile } | undefined)?.profile;
    if (!profile) return `  no CPU profile within ${ANSWER_MS / 1000} s\n${resources}`;
    const { busy, top } = hottest(profile);
    if (busy < 0.5) return `  event loop idle (waiting, not blocked: busy ${Math.round(busy * 100)}% of 1 s)\n${resources}`;
    await send("Debugger.enable");
    // A starved loop pauses between microtasks, where the synchronous stack is only Node's
    // tick loop: the awaits that led there say which code keeps the loop busy.
    await send("Debugger.setAsyncCallStackDepth", { maxDepth: 16 });
    // Up to five samples, until one shows code of the project or its libraries.
    let stack: string[] = [];
    for (let sample = 0; sample < 5; sample++) {
      const frames = new Promise<string[] | undefined>((resolve) => {
        paused = resolve;
        setTimeout(() => resolve(undefined), ANSWER_MS).unref();
      });
      await send("Debugger.pause");
      const got = await frames;
      if (!got) continue;
      await send("Debugger.resume");
      stack = got;
      if (got.some((l) => !l.includes("(node:"))) break;
    }
    return `  event loop busy (${Math.round(busy * 100)}% of 1 s), at:\n${stack.slice(0, 40).join("\n")}\n  busiest functions over 1 s (samples):\n${top.join("\n")}\n${resources}`;
  } finally {
    ws.close();
  }
}

type Frame = { functionName: string; url: string; location: { scriptId: string; lineNumber: number; columnNumber: number } };
type AsyncFrame = { functionName: string; url: string; scriptId: string; lineNumber: number; columnNumber: number };
type AsyncTrace = { description?: string; callFrames: AsyncFrame[]; parent?: AsyncTrace };
type Paused = { callFrames?: Frame[]; asyncStackTrace?: AsyncTrace };

type Profile = { nodes: { id: number; callFrame: AsyncFrame; hitCount?: number }[] };

/**
 * The share of samples not idle, and the functions with the most samples of their own
 * (Node's and V8's bookkeeping left out of the list).
 */
function hottest(profile: Profile): { busy: number; top: string[] } {
  const hits = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of profile.nodes) {
    const f = n.callFrame;
    total += n.hitCount ?? 0;
    if (f.functionName === "(idle)") idle += n.hitCount ?? 0;
    if (!n.hitCount || f.url === "" || f.url.startsWith("node:")) continue;
    const name = `${f.functionName || "<anonymous>"} (${f.url}:${f.lineNumber + 1}:${f.columnNumber + 1})`;
    hits.set(name, (hits.get(name) ?? 0) + n.hitCount);
  }
  const top = [...hits].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([name, n]) => `  ${n} ${name}`);
  return { busy: total === 0 ? 0 : 1 - idle / total, top };
}

/** The paused stack, then each await that led to it; frames of Node's own tick loop left out. */
function stackLines(p: Paused, scripts: Map<string, string>): string[] {
  const at = (name: string, url: string, line: number, col: number) => `  at ${name || "<anonymous>"} (${url}:${line + 1}:${col + 1})`;
  const lines = (p.callFrames ?? []).map((f) => at(f.functionName, f.url || scripts.get(f.location.scriptId) || "?", f.location.lineNumber, f.location.columnNumber));
  for (let t = p.asyncStackTrace; t; t = t.parent) {
    const frames = t.callFrames.filter((f) => f.functionName !== "processTicksAndRejections");
    if (frames.length === 0) continue;
    lines.push(`  -- ${t.description ?? "async"}`);
    for (const f of frames) lines.push(at(f.functionName, f.url || scripts.get(f.scriptId) || "?", f.lineNumber, f.columnNumber));
  }
  return lines;
}

/** The inspector's WebSocket address, once the worker has opened it (generously bounded: the machine may be loaded). */
async function inspectorUrl(): Promise<string> {
  let url: string | undefined;
  await waitFor("the worker's inspector to open", async () => {
    const list = (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`).then((r) => r.json(), () => [])) as { webSocketDebuggerUrl: string }[];
    url = list[0]?.webSocketDebuggerUrl;
    return url !== undefined;
  }, { timeoutMs: 30_000, everyMs: 200 });
  return url!;
}
