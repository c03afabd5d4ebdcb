import { describe, expect, it } from "vitest";
import { RestartPolicy } from "./supervisor.js";

describe("the launcher's restart policy", () => {
  it("restarts a crashed service after a pause that doubles, up to a cap", () => {
    let t = 0;
    const p = new RestartPolicy({ baseDelayMs: 500, maxDelayMs: 1_500, maxCrashes: 10, windowMs: 60_000 }, () => t);
    const delays = [1, 2, 3, 4].map(() => { t += 1_000; const d = p.onCrash("chat"); return d.restart ? d.delayMs : -1; });
    expect(delays).toEqual([500, 1_000, 1_500, 1_500]);
  });

  it("gives up on a service that keeps crashing within the window, and forgets old crashes", () => {
    let t = 0;
    const p = new RestartPolicy({ baseDelayMs: 10, maxDelayMs: 100, maxCrashes: 3, windowMs: 10_000 }, () => t);
    expect(p.onCrash("edge").restart).toBe(true);
    t += 20_000; // the first crash is out of the window
    expect(p.onCrash("edge").restart).toBe(true);
    t += 1_000;
    expect(p.onCrash("edge").restart).toBe(true);
    t += 1_000;
    expect(p.onCrash("edge")).toEqual({ restart: false, crashes: 3 });
    // Another service has its own history.
    expect(p.onCrash("chat").restart).toBe(true);
  });
});
