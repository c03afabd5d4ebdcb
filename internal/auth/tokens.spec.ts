import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../config/env.js";
import { ErrorCode } from "../errors/chat-error.js";
import { signingKeyFile, verifyingKeyFiles } from "./keys.js";
import { TokenIssuer, TokenVerifier } from "./tokens.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-keys-"));
function pair(name: string): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const priv = path.join(dir, `${name}.pem`);
  const pub = path.join(dir, `${name}.pub.pem`);
  fs.writeFileSync(priv, privateKey.export({ type: "pkcs8", format: "pem" }));
  fs.writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
  return { priv, pub };
}

describe("token keys", () => {
  const env = { ...process.env };
  afterEach(() => { process.env = { ...env }; });

  it("names the signing key in each token, and verifies through a rotation", async () => {
    const [old, next] = [pair("old"), pair("next")];
    const oldToken = (await (await TokenIssuer.fromFile(old.priv, 60)).issue("u1", "ann", "s1")).token;
    const nextIssuer = await TokenIssuer.fromFile(next.priv, 60);
    const nextToken = (await nextIssuer.issue("u1", "ann", "s1")).token;
    expect(JSON.parse(Buffer.from(nextToken.split(".")[0]!, "base64url").toString()).kid).toBe(nextIssuer.keyId);
    // During the rotation edges hold both keys: tokens of either verify.
    const both = await TokenVerifier.fromFiles([next.pub, old.pub]);
    expect((await both.verify(oldToken)).userId).toBe("u1");
    expect((await both.verify(nextToken)).username).toBe("ann");
    // Once the old key is dropped, its tokens are refused.
    const onlyNext = await TokenVerifier.fromFiles([next.pub]);
    expect((await onlyNext.verify(oldToken).catch((e) => e)).code).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
    expect((await onlyNext.verify(nextToken)).userId).toBe("u1");
  });

  it("carries the session id, and tells an expired token from a bad one", async () => {
    const k = pair("sid");
    const issuer = await TokenIssuer.fromFile(k.priv, 60);
    const verifier = await TokenVerifier.fromFile(k.pub);
    expect((await verifier.verify((await issuer.issue("u1", "ann", "s-42")).token)).sessionId).toBe("s-42");
    const expired = (await issuer.issue("u1", "ann", "s-42", -10)).token;
    expect((await verifier.verify(expired).catch((e) => e)).code).toBe(ErrorCode.ERROR_CODE_TOKEN_EXPIRED);
    expect((await verifier.verify("not.a.token").catch((e) => e)).code).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
  });

  it("refuses to start the production profile without configured keys; the embedded one makes its own", () => {
    delete process.env.AUTH_PRIVATE_KEY_FILE;
    delete process.env.AUTH_PUBLIC_KEY_FILE;
    expect(() => signingKeyFile("production", dir)).toThrow(ConfigError);
    expect(() => verifyingKeyFiles("production", dir)).toThrow(ConfigError);
    expect(fs.existsSync(signingKeyFile("embedded", path.join(dir, "data")))).toBe(true);
    const k = pair("configured");
    process.env.AUTH_PRIVATE_KEY_FILE = k.priv;
    process.env.AUTH_PUBLIC_KEY_FILE = `${k.pub}, ${path.join(dir, "old.pub.pem")}`;
    expect(signingKeyFile("production", dir)).toBe(k.priv);
    expect(verifyingKeyFiles("production", dir)).toEqual([k.pub, path.join(dir, "old.pub.pem")]);
  });
});
