import { metrics, trace, type Attributes, type Counter, type Histogram, type Tracer, type UpDownCounter } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { PeriodicExportingMetricReader, type MetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { AlwaysOffSampler, BatchSpanProcessor, ParentBasedSampler, AlwaysOnSampler, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";

export interface TelemetryHandle {
  shutdown(): Promise<void>;
}

/**
 * Traces and metrics for one service process. Traces go to an OTLP/HTTP collector
 * when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; metrics are
 * always on a Prometheus endpoint (METRICS_PORT, 0 = off) and also pushed over
 * OTLP when an endpoint is set. W3C trace context is the propagator.
 */
export function startTelemetry(service: string, instanceId: string, metricsPort: number): TelemetryHandle {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesEndpoint = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (endpoint ? `${endpoint.replace(/\/$/, "")}/v1/traces` : undefined);
  const spanProcessors: SpanProcessor[] = [];
  if (tracesEndpoint) {
    const exporter = new OTLPTraceExporter({ url: tracesEndpoint });
    // OTEL_BSP_SCHEDULE_DELAY=0 (tests) exports each span as it ends.
    spanProcessors.push(process.env.OTEL_BSP_SCHEDULE_DELAY === "0" ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter));
  }
  const metricReaders: MetricReader[] = [];
  if (metricsPort > 0) metricReaders.push(new PrometheusExporter({ port: metricsPort, host: process.env.METRICS_HOST ?? "127.0.0.1" }));
  if (endpoint) metricReaders.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/metrics` }), exportIntervalMillis: 15_000 }));
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ "service.name": service, "service.namespace": "meshchat", "service.instance.id": instanceId }),
    spanProcessors,
    // With no collector configured, spans are not recorded at all (context still
    // propagates): recording spans nobody exports costs CPU on every call.
    sampler: tracesEndpoint ? new ParentBasedSampler({ root: new AlwaysOnSampler() }) : new AlwaysOffSampler(),
    metricReaders,
    instrumentations: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown().catch(() => {}) };
}

export function tracer(): Tracer {
  return trace.getTracer("meshchat");
}

/** The product's own metrics; names follow OpenTelemetry conventions where one exists. */
export class ChatMetrics {
  private static instance: ChatMetrics | undefined;
  readonly sessions: UpDownCounter;
  readonly framesIn: Counter;
  readonly framesOut: Counter;
  readonly messagesSent: Counter;
  readonly messagesDelivered: Counter;
  readonly deliveryLatency: Histogram;
  readonly errors: Counter;
  readonly rpcDuration: Histogram;
  readonly storeLatency: Histogram;
  readonly pushes: Counter;

  private constructor() {
    const m = metrics.getMeter("meshchat");
    this.sessions = m.createUpDownCounter("meshchat.edge.sessions", { description: "Authenticated WebSocket sessions" });
    this.framesIn = m.createCounter("meshchat.edge.frames.in", { description: "Client frames received" });
    this.framesOut = m.createCounter("meshchat.edge.frames.out", { description: "Server frames sent" });
    this.messagesSent = m.createCounter("meshchat.messages.sent", { description: "Messages durably stored" });
    this.messagesDelivered = m.createCounter("meshchat.messages.delivered", { description: "Message events written to device sockets (live)" });
    this.deliveryLatency = m.createHistogram("meshchat.delivery.latency", {
      description: "From chat accepting the send to the frame leaving the recipient's edge (includes the durable write)",
      unit: "ms",
      advice: { explicitBucketBoundaries: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000] },
    });
    this.errors = m.createCounter("meshchat.errors", { description: "Errors returned to clients or callers, by code" });
    this.rpcDuration = m.createHistogram("rpc.server.duration", { unit: "ms", description: "gRPC server call duration", advice: { explicitBucketBoundaries: [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000] } });
    this.storeLatency = m.createHistogram("meshchat.store.latency", { unit: "ms", description: "Message-store operation latency", advice: { explicitBucketBoundaries: [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000] } });
    this.pushes = m.createCounter("meshchat.push.notifications", { description: "Push notifications by provider and outcome" });
  }

  static get(): ChatMetrics {
    return (ChatMetrics.instance ??= new ChatMetrics());
  }

  error(code: string, attrs: Attributes = {}): void {
    this.errors.add(1, { "error.code": code, ...attrs });
  }
}
