import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Runs vitest on one fixture with a short hang limit: its exit code and everything it printed. */
function runFixture(name: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--config", "test/support/fixtures/hang/vitest.config.ts", name], {
      cwd: ROOT, env: { ...process.env, VITEST_HANG_S: "10" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => { out += String(d); });
    child.stderr.on("data", (d) => { out += String(d); });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
  });
}

describe("the hang watchdog (a vitest reporter)", () => {
  it("kills a worker whose event loop is blocked, with the stack it was blocked in, and fails the run", async () => {
    const { code, out } = await runFixture("blocked.fixture.ts");
    expect(code).not.toBe(0);
    expect(out).toMatch(/no test event for \d+ s; running:\n {2}file .*blocked\.fixture\.ts/);
    expect(out).toMatch(/event loop busy \(\d+% of 1 s\), at:\n {2}at .*blocked\.fixture\.ts/);
  }, 60_000);

  it("kills a worker starved by a loop of microtasks, with the stack it was in", async () => {
    const { code, out } = await runFixture("starved.fixture.ts");
    expect(code).not.toBe(0);
    // The test's own start is not listed: a starved worker never sends the batch that reports it.
    expect(out).toMatch(/no test event for \d+ s; running:\n {2}file .*starved\.fixture\.ts/);
    // Samples of the stack may all land in Node's tick loop; the CPU profile names the loop.
    expect(out).toMatch(/busiest functions over 1 s \(samples\):\n {2}\d+ .*starved\.fixture\.ts/);
  }, 60_000);

  it("tells an idle worker, waiting where no timeout applies, from a busy one", async () => {
    const { code, out } = await runFixture("idle.fixture.ts");
    expect(code).not.toBe(0);
    expect(out).toMatch(/no test event for \d+ s; running:\n {2}file .*idle\.fixture\.ts/);
    expect(out).toMatch(/event loop idle \(waiting, not blocked: busy \d+% of 1 s\)\n {2}active resources: /);
  }, 60_000);
});
