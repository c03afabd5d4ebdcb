import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const REPO_ROOT = path.basename(HERE_ROOT) === "dist" ? path.dirname(HERE_ROOT) : HERE_ROOT;

/** Makes the development CA and service certificates (mesh/certs.sh) unless they exist. */
export function ensureDevCerts(dir: string): void {
  if (fs.existsSync(path.join(dir, ".complete"))) return;
  const r = spawnSync("bash", [path.join(REPO_ROOT, "mesh", "certs.sh"), dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mesh/certs.sh failed: ${r.stderr || r.stdout}`);
}
