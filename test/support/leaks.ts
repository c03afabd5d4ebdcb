/**
 * Fails a test file that leaves something running: a socket, a server, a child
 * process or a timer that keeps the process alive (unref'd timers do not count).
 * Registered for every tier in vitest.config.ts; Node's own list of active
 * resources is compared before the file's first test and after its last.
 */
import { afterAll, beforeAll } from "vitest";
import { sleep } from "../../internal/run/sleep.js";

const WATCHED = new Set(["Timeout", "TCPSocketWrap", "TCPServerWrap", "ProcessWrap", "UDPWrap", "PipeServerWrap"]);

function count(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (WATCHED.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function leaked(before: Map<string, number>): string[] {
  return [...count()].filter(([k, n]) => n > (before.get(k) ?? 0)).map(([k, n]) => `${n - (before.get(k) ?? 0)} ${k}`);
}

let before = new Map<string, number>();
beforeAll(() => { before = count(); });
afterAll(async () => {
  // Closing sockets and exiting children complete asynchronously: wait for that outcome, briefly.
  const deadline = Date.now() + 5_000;
  let left = leaked(before);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = leaked(before);
  }
  if (left.length > 0) throw new Error(`this test file left running: ${left.join(", ")} (close what it opened)`);
});
