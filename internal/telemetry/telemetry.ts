import { randomBytes } from "node:crypto";
import { context, metrics, trace, TraceFlags, type Attributes, type Counter, type Histogram, type UpDownCounter } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { hostname } from "node:os";
import { envDetector, processDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { PeriodicExportingMetricReader, type MetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { AlwaysOffSampler, BatchSpanProcessor, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { Logger } from "../log/logger.js";
import { wireDiagLogger } from "./diag.js";
import { startRuntimeMetrics } from "./runtime.js";
import { TalliedCounter } from "./tallied-counter.js";

export interface TelemetryHandle {
  shutdown(): Promise<void>;
}

/** The product version reported by meshchat_build_info (package.json's, set by the build). */
const VERSION = process.env.MESHCHAT_VERSION ?? process.env.npm_package_version ?? "0.1.0";

/**
 * Traces and metrics for one service process. Traces go to an OTLP/HTTP collector
 * when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; metrics are
 * always on a Prometheus endpoint (METRICS_PORT, 0 = off) and also pushed over
 * OTLP when an endpoint is set (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT overrides).
 * W3C trace context is the propagator. The sampler is the SDK's env-based one:
 * OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on).
 * The SDK's own failures (an export answered 404, a collector down) go to `log`.
 */
export function startTelemetry(service: string, instanceId: string, metricsPort: number, log?: Logger): TelemetryHandle {
  if (log) wireDiagLogger(log);
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/$/, "");
  const tracesEndpoint = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (endpoint ? `${endpoint}/v1/traces` : undefined);
  const metricsEndpoint = process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? (endpoint ? `${endpoint}/v1/metrics` : undefined);
  const spanProcessors: SpanProcessor[] = [];
  if (tracesEndpoint) {
    const exporter = new OTLPTraceExporter({ url: tracesEndpoint });
    // OTEL_BSP_SCHEDULE_DELAY=0 (tests) exports each span as it ends.
    spanProcessors.push(process.env.OTEL_BSP_SCHEDULE_DELAY === "0" ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter));
  }
  const metricReaders: MetricReader[] = [];
  if (metricsPort > 0) metricReaders.push(new PrometheusExporter({ port: metricsPort, host: process.env.METRICS_HOST ?? "127.0.0.1" }));
  if (metricsEndpoint) {
    const interval = Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || 15_000;
    metricReaders.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: metricsEndpoint }), exportIntervalMillis: interval, exportTimeoutMillis: Math.min(interval, 10_000) }));
  }
  const sdk = new NodeSDK({
    // The host's attributes are set here rather than by the SDK's host detector, whose host.id is
    // read asynchronously: a Prometheus scrape before it settled logged an error line
    // ("Accessing resource attributes before async attributes settled") at every start.
    resource: resourceFromAttributes({ "service.name": service, "service.namespace": "meshchat", "service.instance.id": instanceId, "service.version": VERSION, "host.name": hostname() }),
    resourceDetectors: [envDetector, processDetector],
    spanProcessors,
    // With no collector configured, spans are not recorded at all (context still
    // propagates): recording spans nobody exports costs CPU on every call. With
    // one, leaving `sampler` unset makes the SDK build it from OTEL_TRACES_SAMPLER.
    ...(tracesEndpoint ? {} : { sampler: new AlwaysOffSampler() }),
    metricReaders,
    instrumentations: [],
  });
  sdk.start();
  const stopRuntime = startRuntimeMetrics(service, VERSION);
  return {
    shutdown: async () => {
      stopRuntime();
      await sdk.shutdown().catch((err: unknown) => log?.warn("telemetry shutdown failed", { err }));
    },
  };
}

/**
 * Runs fn under a parent that is not sampled, so parent-based samplers (the
 * default) record nothing here and, through the traceparent's flags, in the
 * services it calls: for periodic work (heartbeats) that would otherwise start
 * a root trace every interval in every process on its path.
 */
export function unsampled<T>(fn: () => T): T {
  const parent = { traceId: randomBytes(16).toString("hex"), spanId: randomBytes(8).toString("hex"), traceFlags: TraceFlags.NONE, isRemote: true };
  return context.with(trace.setSpanContext(context.active(), parent), fn);
}

/** Seconds since a performance.now() reading: every duration metric is in seconds, as Prometheus expects. */
export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const seconds = (description: string) => ({ unit: "s", description, advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } });

/** Errors a service received from a peer: counted where they were decided, not again on each hop back. */
const remoteErrors = new WeakSet<object>();
export function markRemote(err: object): void {
  remoteErrors.add(err);
}

/**
 * The product's own metrics; names follow OpenTelemetry conventions where one
 * exists (rpc.*, messaging.*, db.*), durations in seconds.
 */
export class ChatMetrics {
  private static instance: ChatMetrics | undefined;
  readonly sessions: UpDownCounter;
  readonly users: UpDownCounter;
  // Counted per frame, message or event: summed in place (tallied-counter.ts).
  readonly framesIn: TalliedCounter;
  readonly framesOut: TalliedCounter;
  readonly frameErrors: Counter;
  readonly frameDuration: Histogram;
  readonly disconnects: Counter;
  readonly catchups: Counter;
  readonly catchupRetries: Counter;
  readonly logTrimmedResyncs: Counter;
  readonly catchupEvents: TalliedCounter;
  readonly catchupDuration: Histogram;
  readonly heartbeatDuration: Histogram;
  readonly messagesSent: TalliedCounter;
  readonly messagesDelivered: TalliedCounter;
  readonly deliveryLatency: Histogram;
  readonly fanoutDuration: Histogram;
  readonly batchSize: Histogram;
  readonly queueDepth: UpDownCounter;
  readonly errors: Counter;
  readonly rpcServerDuration: Histogram;
  readonly rpcClientDuration: Histogram;
  readonly storeLatency: Histogram;
  readonly pushes: Counter;

  private constructor() {
    const m = metrics.getMeter("meshchat");
    this.sessions = m.createUpDownCounter("meshchat.edge.sessions", { description: "Authenticated WebSocket sessions" });
    this.users = m.createUpDownCounter("meshchat.edge.users", { description: "Distinct users with at least one session on this edge" });
    this.framesIn = TalliedCounter.of(m, "meshchat.edge.frames.in", { description: "Client frames received, by kind" });
    this.framesOut = TalliedCounter.of(m, "meshchat.edge.frames.out", { description: "Server frames sent, by kind" });
    this.frameErrors = m.createCounter("meshchat.edge.frame.errors", { description: "Client frames answered with an error, by kind and error code" });
    this.frameDuration = m.createHistogram("meshchat.edge.frame.duration", seconds("Time to handle one client frame, by kind"));
    this.disconnects = m.createCounter("meshchat.edge.disconnects", { description: "WebSocket sessions closed, by close code" });
    this.catchups = m.createCounter("meshchat.edge.catchups", { description: "Catch-ups (reads of a device's log from its cursor)" });
    this.catchupRetries = m.createCounter("meshchat.edge.catchup.retries", { description: "Reads of a device's log made again in its session after the store refused one as retryable (UNAVAILABLE)" });
    this.logTrimmedResyncs = m.createCounter("meshchat.edge.log_trimmed", { description: "Catch-ups from a cursor older than the sync log keeps: the device was told to resync in full" });
    this.catchupEvents = TalliedCounter.of(m, "meshchat.edge.catchup.events", { description: "Events sent by catch-ups" });
    this.catchupDuration = m.createHistogram("meshchat.edge.catchup.duration", seconds("From the start of a catch-up to its Synced frame"));
    this.heartbeatDuration = m.createHistogram("meshchat.edge.heartbeat.duration", seconds("Round trip of the edge's batched heartbeat to presence"));
    this.messagesSent = TalliedCounter.of(m, "meshchat.messages.sent", { description: "Messages durably stored" });
    this.messagesDelivered = TalliedCounter.of(m, "meshchat.messages.delivered", { description: "Message events written to device sockets (live), by recipient (sender's own devices or others)" });
    this.deliveryLatency = m.createHistogram("meshchat.delivery.latency", {
      ...seconds("From chat accepting the send to the frame leaving the recipient's edge (includes the durable write); meshchat_recipient=\"other\" excludes the sender's own devices"),
    });
    this.fanoutDuration = m.createHistogram("meshchat.chat.fanout.duration", seconds("Live delivery of one fan-out batch: route lookup and the Deliver calls"));
    this.batchSize = m.createHistogram("meshchat.chat.sequencer.batch.size", { description: "Messages per store write", advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] } });
    this.queueDepth = m.createUpDownCounter("meshchat.chat.sequencer.queue.depth", { description: "Sends waiting for a store write" });
    this.errors = m.createCounter("meshchat.errors", { description: "Errors returned to clients or callers, by code, counted where decided (error_origin=local)" });
    this.rpcServerDuration = m.createHistogram("rpc.server.call.duration", seconds("gRPC server call duration"));
    this.rpcClientDuration = m.createHistogram("rpc.client.call.duration", seconds("gRPC client call duration"));
    this.storeLatency = m.createHistogram("meshchat.store.duration", seconds("Message-store operation latency, by operation and backend"));
    this.pushes = m.createCounter("meshchat.push.notifications", { description: "Push notifications by provider and outcome" });
  }

  static get(): ChatMetrics {
    return (ChatMetrics.instance ??= new ChatMetrics());
  }

  /** An error returned by this service; one a peer returned to it is labelled remote so it is not counted twice. */
  error(code: string, attrs: Attributes = {}, err?: unknown): void {
    const origin = typeof err === "object" && err !== null && remoteErrors.has(err) ? "remote" : "local";
    this.errors.add(1, { "error.code": code, "error.origin": origin, ...attrs });
  }
}
