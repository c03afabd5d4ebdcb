import fs from "node:fs";

/** User and system CPU ticks (10 ms each here) from a /proc stat file: a process's or one of its threads'. */
export function statTicks(statFile: string): number {
  const f = fs.readFileSync(statFile, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
}

/** A process's CPU ticks so far. */
export function cpuTicks(pid: number): number {
  return statTicks(`/proc/${pid}/stat`);
}
