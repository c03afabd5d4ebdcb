import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { SERVICE_NODE_FLAGS, serviceEnv, serviceNodeArgs } from "./node-flags.js";

describe("service node flags", () => {
  it("puts ours before NODE_ARGS (the last value of a V8 flag wins) and the entry point last", () => {
    expect(serviceNodeArgs("main.js", " --cpu-prof  --initial-old-space-size=64 ")).toEqual(["--enable-source-maps", ...SERVICE_NODE_FLAGS, "--cpu-prof", "--initial-old-space-size=64", "main.js"]);
    expect(serviceNodeArgs("main.js", undefined)).toEqual(["--enable-source-maps", ...SERVICE_NODE_FLAGS, "main.js"]);
  });

  it("are accepted by the node that runs the services (an unknown flag stops every service at start)", () => {
    const out = execFileSync(process.execPath, [...SERVICE_NODE_FLAGS, "-e", "process.stdout.write(JSON.stringify(process.execArgv))"], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual([...SERVICE_NODE_FLAGS, "-e", expect.any(String)]);
  });

  it("starts the edge with two malloc arenas, and leaves the other services' environment alone", () => {
    expect(serviceEnv("edge")).toEqual({ MALLOC_ARENA_MAX: "2" });
    for (const service of ["chat", "presence", "message-store", "notifier"]) expect(serviceEnv(service)).toEqual({});
  });
});
