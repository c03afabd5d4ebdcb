import { createHash, createPublicKey } from "node:crypto";
import fs from "node:fs";
import { importPKCS8, importSPKI, jwtVerify, SignJWT, type CryptoKey as JoseKey, type JWTHeaderParameters } from "jose";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

const ISSUER = "meshchat";
const AUDIENCE = "meshchat-edge";

export interface TokenClaims {
  userId: string;
  username: string;
  /** The session the token was issued for (claim `sid`): the edge checks it is still live. */
  sessionId: string;
  expiresAtMs: number;
}

/**
 * A key's id: the start of the SHA-256 of its public key (SPKI, DER). Tokens name the
 * key that signed them, so edges can hold the old and the new key through a rotation.
 */
export function keyIdOf(pem: string): string {
  const der = createPublicKey(pem).export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64url").slice(0, 16);
}

/**
 * Signs access tokens (EdDSA): only the accounts service holds the private key. An
 * access token is short-lived (ACCESS_TOKEN_TTL_S) and names its session (`sid`),
 * so ending the session takes it back (docs/security.md, "Sessions").
 */
export class TokenIssuer {
  private constructor(private readonly key: JoseKey | Uint8Array, readonly keyId: string, private readonly ttlSeconds: number) {}

  static async fromFile(file: string, ttlSeconds: number): Promise<TokenIssuer> {
    const pem = fs.readFileSync(file, "utf8");
    return new TokenIssuer(await importPKCS8(pem, "EdDSA"), keyIdOf(pem), ttlSeconds);
  }

  async issue(userId: string, username: string, sessionId: string, ttlSeconds = this.ttlSeconds): Promise<{ token: string; expiresAtMs: number }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ name: username, sid: sessionId })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: this.keyId })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(this.key);
    return { token, expiresAtMs: (now + ttlSeconds) * 1000 };
  }
}

/**
 * Verifies session tokens with the public keys: edges can check but never mint
 * tokens. A token names its key (kid); one signed by a key not listed is refused.
 */
export class TokenVerifier {
  private constructor(private readonly keys: ReadonlyMap<string, JoseKey | Uint8Array>) {}

  static async fromFiles(files: string[]): Promise<TokenVerifier> {
    const keys = new Map<string, JoseKey | Uint8Array>();
    for (const file of files) {
      const pem = fs.readFileSync(file, "utf8");
      keys.set(keyIdOf(pem), await importSPKI(pem, "EdDSA"));
    }
    return new TokenVerifier(keys);
  }

  static fromFile(file: string): Promise<TokenVerifier> {
    return TokenVerifier.fromFiles([file]);
  }

  private keyFor = (header: JWTHeaderParameters): JoseKey | Uint8Array => {
    // Tokens issued before key ids existed carry none: only a single configured key can be meant.
    const key = header.kid === undefined && this.keys.size === 1 ? [...this.keys.values()][0] : this.keys.get(header.kid ?? "");
    if (!key) throw new Error(`unknown signing key ${header.kid ?? "(none)"}`);
    return key;
  };

  async verify(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.keyFor, { issuer: ISSUER, audience: AUDIENCE, algorithms: ["EdDSA"] });
      // Tokens of before sessions (7 days, no sid) cannot be taken back: they are refused.
      if (typeof payload.sub !== "string" || typeof payload.name !== "string" || typeof payload.exp !== "number" || typeof payload.sid !== "string") throw new Error("claims missing");
      return { userId: payload.sub, username: payload.name, sessionId: payload.sid, expiresAtMs: payload.exp * 1000 };
    } catch (err) {
      // Expired is its own code: the client refreshes and tries again; anything else means log in.
      if ((err as { code?: string }).code === "ERR_JWT_EXPIRED") throw new ChatError(ErrorCode.ERROR_CODE_TOKEN_EXPIRED, "access token expired; refresh it", { cause: err });
      throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "invalid token", { cause: err });
    }
  }
}
