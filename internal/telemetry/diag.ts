import { diag, DiagLogLevel, type DiagLogger } from "@opentelemetry/api";
import type { Logger } from "../log/logger.js";

/** One report per distinct message per this long: a dead collector must not flood the logs. */
const THROTTLE_MS = 60_000;

/**
 * Routes the OpenTelemetry SDK's own diagnostics (export failures: a collector
 * that answers 404 or is unreachable) to the product's logger, at warn and above,
 * each distinct message at most once a minute with the count it stood for.
 * Without this an export failure is silent.
 */
export function wireDiagLogger(log: Logger, now: () => number = Date.now): void {
  const last = new Map<string, { at: number; suppressed: number }>();
  const report = (level: "warn" | "error", raw: string, args: unknown[]) => {
    const message = summarize(raw);
    const key = `${level}:${message}`;
    const t = now();
    const seen = last.get(key);
    if (seen && t - seen.at < THROTTLE_MS) {
      seen.suppressed++;
      return;
    }
    last.set(key, { at: t, suppressed: 0 });
    const err = args.find((a) => a instanceof Error) ?? args[0];
    log[level](`telemetry: ${message}`, { ...(err !== undefined ? { err } : {}), ...(seen?.suppressed ? { suppressed: seen.suppressed } : {}) });
  };
  const logger: DiagLogger = {
    error: (m, ...a) => report("error", m, a),
    warn: (m, ...a) => report("warn", m, a),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  };
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

/**
 * The SDK's error handler reports an exception as its JSON (stack included, which
 * differs with each call path): the name, message and code alone make one readable
 * line and one throttling key per distinct failure.
 */
export function summarize(raw: string): string {
  try {
    const e = JSON.parse(raw) as { name?: unknown; message?: unknown; code?: unknown };
    if (e && typeof e === "object" && typeof e.message === "string") {
      const name = typeof e.name === "string" && !e.message.startsWith(e.name) ? `${e.name}: ` : "";
      return `${name}${e.message}${e.code !== undefined ? ` (code ${String(e.code)})` : ""}`;
    }
  } catch {
    // Not JSON: a plain message.
  }
  return raw.split("\n")[0]!;
}
