import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const PREFIX = "meshchat_device_";

/**
 * The known-device cookie: proof that this browser (or client) logged in to this
 * account before. It lets the real user past the per-account back-off that an
 * attacker's wrong guesses build up (docs/security.md), so guessing cannot lock
 * the owner out. It proves nothing else: the password is still checked, and the
 * per-address limit still applies. HttpOnly (page scripts never see it),
 * SameSite=Strict, only sent to /v1/login; the value is `<issued ms>.<HMAC>` of
 * the username and that time under a key every edge shares.
 */
export class DeviceCookies {
  private constructor(private readonly key: Buffer, private readonly maxAgeMs: number, private readonly secure: boolean) {}

  /** Reads the key file, making it on first run (the first of several edges to start wins). */
  static load(file: string, maxAgeDays: number, secure: boolean): DeviceCookies {
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      try {
        fs.writeFileSync(file, randomBytes(32).toString("base64"), { flag: "wx", mode: 0o600 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    const key = Buffer.from(fs.readFileSync(file, "utf8").trim(), "base64");
    if (key.length < 16) throw new Error(`${file}: the device cookie key must be at least 16 bytes (base64)`);
    return new DeviceCookies(key, maxAgeDays * 86_400_000, secure);
  }

  /** The Set-Cookie value that makes the caller a known device of `username`. */
  issue(username: string, now = Date.now()): string {
    const attrs = [`Path=/v1/login`, `Max-Age=${Math.floor(this.maxAgeMs / 1000)}`, "HttpOnly", "SameSite=Strict", ...(this.secure ? ["Secure"] : [])];
    return [`${PREFIX}${username}=${now}.${this.mac(username, now)}`, ...attrs].join("; ");
  }

  /** Whether the Cookie header carries a valid, unexpired device cookie for `username`. */
  knows(cookieHeader: string | undefined, username: string, now = Date.now()): boolean {
    if (!cookieHeader) return false;
    const name = `${PREFIX}${username}=`;
    const value = cookieHeader.split(";").map((c) => c.trim()).find((c) => c.startsWith(name))?.slice(name.length);
    const m = value && /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m) return false;
    const issued = Number(m[1]);
    if (issued > now + 60_000 || now - issued > this.maxAgeMs) return false;
    const want = Buffer.from(this.mac(username, issued), "base64url");
    const got = Buffer.from(m[2]!, "base64url");
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private mac(username: string, issued: number): string {
    return createHmac("sha256", this.key).update(`${username}\u0000${issued}`).digest("base64url");
  }
}
