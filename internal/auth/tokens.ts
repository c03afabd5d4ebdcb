import fs from "node:fs";
import { importPKCS8, importSPKI, jwtVerify, SignJWT, type CryptoKey as JoseKey } from "jose";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

const ISSUER = "meshchat";
const AUDIENCE = "meshchat-edge";

export interface TokenClaims {
  userId: string;
  username: string;
  expiresAtMs: number;
}

/** Signs session tokens (EdDSA): only the accounts service holds the private key. */
export class TokenIssuer {
  private constructor(private readonly key: JoseKey | Uint8Array, private readonly ttlSeconds: number) {}

  static async fromFile(file: string, ttlSeconds: number): Promise<TokenIssuer> {
    return new TokenIssuer(await importPKCS8(fs.readFileSync(file, "utf8"), "EdDSA"), ttlSeconds);
  }

  async issue(userId: string, username: string, ttlSeconds = this.ttlSeconds): Promise<{ token: string; expiresAtMs: number }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ name: username })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(this.key);
    return { token, expiresAtMs: (now + ttlSeconds) * 1000 };
  }
}

/** Verifies session tokens with the public key: edges can check but never mint tokens. */
export class TokenVerifier {
  private constructor(private readonly key: JoseKey | Uint8Array) {}

  static async fromFile(file: string): Promise<TokenVerifier> {
    return new TokenVerifier(await importSPKI(fs.readFileSync(file, "utf8"), "EdDSA"));
  }

  async verify(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: AUDIENCE, algorithms: ["EdDSA"] });
      if (typeof payload.sub !== "string" || typeof payload.name !== "string" || typeof payload.exp !== "number") throw new Error("claims missing");
      return { userId: payload.sub, username: payload.name, expiresAtMs: payload.exp * 1000 };
    } catch (err) {
      const expired = (err as { code?: string }).code === "ERR_JWT_EXPIRED";
      throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, expired ? "token expired" : "invalid token", { cause: err });
    }
  }
}
