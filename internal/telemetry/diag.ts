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
  const report = (level: "warn" | "error", message: string, args: unknown[]) => {
    const key = `${level}:${message}`;
    const t = now();
    const seen = last.get(key);
    if (seen && t - seen.at < THROTTLE_MS) {
      seen.suppressed++;
      return;
    }
    last.set(key, { at: t, suppressed: 0 });
    const err = args.find((a) => a instanceof Error) ?? args[0];
    log[level](`telemetry: ${message}`, { err, ...(seen?.suppressed ? { suppressed: seen.suppressed } : {}) });
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
