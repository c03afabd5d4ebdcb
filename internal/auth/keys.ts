import { generateKeyPairSync, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ConfigError } from "../config/env.js";

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

/**
 * The key chat signs tokens with: AUTH_PRIVATE_KEY_FILE. Without it the embedded
 * profile makes (once) and uses a development pair under DATA_DIR; the production
 * profile refuses to start, since instances that each made their own key would
 * issue tokens that the other instances' edges reject.
 */
export function signingKeyFile(profile: string, dataDir: string): string {
  const file = process.env.AUTH_PRIVATE_KEY_FILE;
  if (file) return file;
  if (profile !== "embedded") throw new ConfigError("AUTH_PRIVATE_KEY_FILE is required on the production profile: every chat instance must sign with the same key (see docs/security.md, \"Token keys\")");
  return ensureDevAuthKeys(dataDir).privateKey;
}

/**
 * The keys edges accept tokens from: AUTH_PUBLIC_KEY_FILE, a comma-separated list
 * during a key rotation (the new key and the old one until the old tokens expire).
 * Same defaults and refusal as signingKeyFile.
 */
export function verifyingKeyFiles(profile: string, dataDir: string): string[] {
  const files = (process.env.AUTH_PUBLIC_KEY_FILE ?? "").split(",").map((f) => f.trim()).filter(Boolean);
  if (files.length > 0) return files;
  if (profile !== "embedded") throw new ConfigError("AUTH_PUBLIC_KEY_FILE is required on the production profile: every edge must accept the keys chat signs with (see docs/security.md, \"Token keys\")");
  return [ensureDevAuthKeys(dataDir).publicKey];
}

/** What a launcher passes to its services: development keys, made once under DATA_DIR. */
export function devAuthKeyEnv(dataDir: string): Record<string, string> {
  const files = ensureDevAuthKeys(dataDir);
  return { AUTH_PRIVATE_KEY_FILE: files.privateKey, AUTH_PUBLIC_KEY_FILE: files.publicKey };
}
