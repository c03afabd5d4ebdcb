import { generateKeyPairSync, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export interface AuthKeyFiles {
  privateKey: string;
  publicKey: string;
}

/** AUTH_PRIVATE_KEY_FILE / AUTH_PUBLIC_KEY_FILE, default DATA_DIR/keys/auth-ed25519{,.pub}.pem. */
export function authKeyFiles(dataDir: string): AuthKeyFiles {
  const dir = path.join(dataDir, "keys");
  return {
    privateKey: process.env.AUTH_PRIVATE_KEY_FILE || path.join(dir, "auth-ed25519.pem"),
    publicKey: process.env.AUTH_PUBLIC_KEY_FILE || path.join(dir, "auth-ed25519.pub.pem"),
  };
}

/**
 * Makes the development token-signing key pair on first run. Several services may
 * start at once, so both files are written to a private folder that is renamed
 * into place in one step: readers see both files or neither.
 */
export function ensureDevAuthKeys(dataDir: string): AuthKeyFiles {
  const files = authKeyFiles(dataDir);
  if (fs.existsSync(files.privateKey) && fs.existsSync(files.publicKey)) return files;
  const dir = path.dirname(files.privateKey);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${randomUUID()}`;
  fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  fs.writeFileSync(path.join(tmp, path.basename(files.privateKey)), privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  fs.writeFileSync(path.join(tmp, path.basename(files.publicKey)), publicKey.export({ type: "spki", format: "pem" }));
  try {
    fs.renameSync(tmp, dir);
  } catch {
    // Another process won the race: keep its keys.
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return files;
}
