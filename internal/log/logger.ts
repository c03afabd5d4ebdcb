import { trace } from "@opentelemetry/api";

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured JSON logs, one object per line, carrying the active trace and span ids. */
export class Logger {
  constructor(
    private readonly service: string,
    private readonly min: Level = (process.env.LOG_LEVEL as Level) || "info",
    private readonly fields: Record<string, unknown> = {},
  ) {}

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.service, this.min, { ...this.fields, ...fields });
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.write("debug", msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.write("info", msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.write("warn", msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.write("error", msg, fields); }

  private write(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.min]) return;
    const span = trace.getActiveSpan()?.spanContext();
    const line: Record<string, unknown> = { ts: new Date().toISOString(), level, service: this.service, msg, ...this.fields, ...fields };
    if (span) { line.trace_id = span.traceId; line.span_id = span.spanId; }
    for (const [k, v] of Object.entries(line)) if (v instanceof Error) line[k] = { message: v.message, stack: v.stack, cause: String((v as Error).cause ?? "") };
    process.stderr.write(JSON.stringify(line) + "\n");
  }
}
