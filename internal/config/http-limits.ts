import path from "node:path";
import { bool, int, str } from "./env.js";

/** A token bucket setting: tokens a minute, at most `burst` saved up. */
export interface BucketSetting {
  perMinute: number;
  burst: number;
}

/**
 * Limits of the edge's HTTP listener and of sign-up and log-in (docs/security.md
 * says what each one stops). "Address" is the TCP peer address (an IPv6 peer
 * counts by its /64): behind a proxy or load balancer, keep the client address
 * (e.g. Kubernetes externalTrafficPolicy: Local), or every client shares one budget.
 */
export interface HttpLimitsConfig {
  /** HTTP_REQUEST_TIMEOUT_MS: a request (headers and body) must arrive within this. Default 30000 (Node: 300000). */
  requestTimeoutMs: number;
  /** HTTP_HEADERS_TIMEOUT_MS: the request headers must arrive within this. Default 10000 (Node: 60000). */
  headersTimeoutMs: number;
  /** HTTP_KEEP_ALIVE_TIMEOUT_MS: an idle keep-alive connection between requests is closed after this. Default 5000. */
  keepAliveTimeoutMs: number;
  /** HTTP_IDLE_TIMEOUT_MS: a connection with a request in progress and no bytes moving is closed after this (not WebSockets, which have heartbeats). Default 60000 (Node: none). */
  idleTimeoutMs: number;
  /** MAX_CONNECTIONS_PER_ADDRESS: open TCP connections (HTTP and WebSocket) per source address; 0 = no cap. Default 64. */
  maxConnectionsPerAddress: number;
  /** LOGIN_ADDRESS_PER_MINUTE / LOGIN_ADDRESS_BURST: login attempts per source address. Defaults 30 / 20. */
  loginPerAddress: BucketSetting;
  /** LOGIN_ACCOUNT_PER_MINUTE / LOGIN_ACCOUNT_BURST: login attempts per account from devices it does not know. Defaults 10 / 10. */
  loginPerAccount: BucketSetting;
  /**
   * LOGIN_BACKOFF_FREE / LOGIN_BACKOFF_BASE_MS / LOGIN_BACKOFF_MAX_MS / LOGIN_BACKOFF_WINDOW_MS:
   * after FREE attempts without a success, each further attempt on the account from a
   * device it does not know closes it for BASE_MS, then twice that, up to MAX_MS; the
   * count is forgotten WINDOW_MS after the last attempt or at the next success.
   * Defaults 5 / 1000 / 300000 / 3600000.
   */
  loginBackoff: { free: number; baseMs: number; maxMs: number; windowMs: number };
  /** SIGNUP_ADDRESS_PER_MINUTE / SIGNUP_ADDRESS_BURST: accounts created per source address. Defaults 2 / 10. */
  signupPerAddress: BucketSetting;
  /**
   * RATE_LIMITED_REPLY_DELAY_MS: a sign-up or log-in refused by a limit is answered after this
   * long (or its retry_after, if shorter). A refusal costs the edge little, but a guesser that
   * gets it at once can ask thousands of times a second and take the edge's time from everyone
   * else; held, each of its connections asks at most this often. Default 1000 (0 = at once).
   */
  rateLimitedReplyDelayMs: number;
  /**
   * DEVICE_COOKIE_KEY_FILE: HMAC key of the known-device cookie (made on first run if missing;
   * every edge of an installation must share it). Default DATA_DIR/keys/device-cookie.key.
   */
  deviceCookieKeyFile: string;
  /** DEVICE_COOKIE_MAX_AGE_DAYS: how long a device stays known after its last login. Default 90. */
  deviceCookieMaxAgeDays: number;
  /** PUBLIC_HTTPS: clients reach the edge through TLS (a proxy in front): sends HSTS, marks cookies Secure. Default false. */
  publicHttps: boolean;
}

export function loadHttpLimits(dataDir: string): HttpLimitsConfig {
  return {
    requestTimeoutMs: int("HTTP_REQUEST_TIMEOUT_MS", 30_000, 1_000),
    headersTimeoutMs: int("HTTP_HEADERS_TIMEOUT_MS", 10_000, 1_000),
    keepAliveTimeoutMs: int("HTTP_KEEP_ALIVE_TIMEOUT_MS", 5_000, 100),
    idleTimeoutMs: int("HTTP_IDLE_TIMEOUT_MS", 60_000, 1_000),
    maxConnectionsPerAddress: int("MAX_CONNECTIONS_PER_ADDRESS", 64, 0),
    loginPerAddress: { perMinute: int("LOGIN_ADDRESS_PER_MINUTE", 30, 1), burst: int("LOGIN_ADDRESS_BURST", 20, 1) },
    loginPerAccount: { perMinute: int("LOGIN_ACCOUNT_PER_MINUTE", 10, 1), burst: int("LOGIN_ACCOUNT_BURST", 10, 1) },
    loginBackoff: {
      free: int("LOGIN_BACKOFF_FREE", 5, 0),
      baseMs: int("LOGIN_BACKOFF_BASE_MS", 1_000, 1),
      maxMs: int("LOGIN_BACKOFF_MAX_MS", 300_000, 1),
      windowMs: int("LOGIN_BACKOFF_WINDOW_MS", 3_600_000, 1_000),
    },
    signupPerAddress: { perMinute: int("SIGNUP_ADDRESS_PER_MINUTE", 2, 1), burst: int("SIGNUP_ADDRESS_BURST", 10, 1) },
    rateLimitedReplyDelayMs: int("RATE_LIMITED_REPLY_DELAY_MS", 1_000, 0, 60_000),
    deviceCookieKeyFile: path.resolve(str("DEVICE_COOKIE_KEY_FILE", path.join(dataDir, "keys", "device-cookie.key"))),
    deviceCookieMaxAgeDays: int("DEVICE_COOKIE_MAX_AGE_DAYS", 90, 1, 3_650),
    publicHttps: bool("PUBLIC_HTTPS", false),
  };
}
