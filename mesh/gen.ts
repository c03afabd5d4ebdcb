/**
 * Generates, from mesh/topology.yaml, one Envoy v3 bootstrap per service
 * (mesh/envoy/<service>.yaml) and the services' Kubernetes manifests
 * (mesh/k8s/services.yaml). Deterministic: `make mesh-validate` regenerates into
 * a temporary folder and fails when the committed files differ.
 * Usage: npx tsx mesh/gen.ts [OUT_DIR]   (default: mesh)
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { CALLER_POLICY, INTERNAL_PACKAGE } from "../internal/grpc/caller-policy.js";
import { SERVICE_NODE_FLAGS, serviceEnv } from "../internal/launcher/node-flags.js";

interface ServiceSpec {
  port: number;
  replicas: number;
  public?: { port: number; idleTimeout: string };
  calls: string[];
  /** The servers it talks to (etcd, redis, redis-cache, postgres, postgres-replica, cassandra). */
  backends: string[];
  /** Talks to the internet (push providers): HTTPS egress. */
  internetEgress?: boolean;
  hashHeader?: string;
}
interface Topology {
  namespace: string;
  trustDomain: string;
  certDir: string;
  image: string;
  envoyImage: string;
  otelCollector: { host: string; port: number };
  backendPorts: Record<string, number>;
  appPortOffset: number;
  outboundPortOffset: number;
  adminPort: number;
  services: Record<string, ServiceSpec>;
  policy: {
    connectTimeout: string;
    requestTimeout: string;
    retry: { retryOn: string; numRetries: number; perTryTimeout: string; budgetPercent: number; minRetryConcurrency: number };
    healthCheck: { interval: string; timeout: string; unhealthyThreshold: number; healthyThreshold: number };
    outlier: { consecutive5xx: number; interval: string; baseEjectionTime: string; maxEjectionPercent: number };
    circuitBreaker: { maxConnections: number; maxPendingRequests: number; maxRequests: number };
  };
}

const HERE = path.dirname(new URL(import.meta.url).pathname);
const topo = YAML.parse(fs.readFileSync(path.join(HERE, "topology.yaml"), "utf8")) as Topology;
const out = path.resolve(process.argv[2] ?? HERE);

const T = {
  hcm: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  router: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
  downstreamTls: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
  upstreamTls: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
  httpOptions: "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
  otel: "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
  stdout: "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
  rbac: "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
};

const spiffe = (name: string) => `spiffe://${topo.trustDomain}/${name}`;
const cert = (name: string) => ({ certificate_chain: { filename: `${topo.certDir}/${name}.pem` }, private_key: { filename: `${topo.certDir}/${name}-key.pem` } });
const http2Options = { "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": { "@type": T.httpOptions, explicit_http_config: { http2_protocol_options: {} } } };
/**
 * JSON access log lines carrying the trace id, so a sidecar's line joins the app's logs
 * and the trace (%TRACE_ID% is the active span's trace; traceparent as it arrived).
 */
const accessLog = [{
  name: "envoy.access_loggers.stdout",
  typed_config: {
    "@type": T.stdout,
    log_format: {
      json_format: {
        time: "%START_TIME%",
        trace_id: "%TRACE_ID%",
        traceparent: "%REQ(TRACEPARENT)%",
        method: "%REQ(:METHOD)%",
        path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        protocol: "%PROTOCOL%",
        status: "%RESPONSE_CODE%",
        grpc_status: "%GRPC_STATUS_NUMBER%",
        flags: "%RESPONSE_FLAGS%",
        duration_ms: "%DURATION%",
        upstream: "%UPSTREAM_HOST%",
        peer: "%DOWNSTREAM_REMOTE_ADDRESS%",
      },
    },
  },
}];
const router = [{ name: "envoy.filters.http.router", typed_config: { "@type": T.router } }];

function tracing(service: string) {
  return {
    provider: {
      name: "envoy.tracers.opentelemetry",
      typed_config: { "@type": T.otel, grpc_service: { envoy_grpc: { cluster_name: "otel_collector" }, timeout: "1s" }, service_name: `${service}-sidecar` },
    },
  };
}

function hcm(statPrefix: string, service: string, routeConfig: object, extra: object = {}) {
  return {
    name: "envoy.filters.network.http_connection_manager",
    typed_config: {
      "@type": T.hcm,
      stat_prefix: statPrefix,
      codec_type: "AUTO",
      tracing: tracing(service),
      access_log: accessLog,
      route_config: routeConfig,
      http_filters: router,
      ...extra,
    },
  };
}

/** Who may call `name`, per the app's own caller policy (internal/grpc/caller-policy.ts). */
function callersOf(name: string): Record<string, readonly string[]> {
  const policy = CALLER_POLICY[name];
  if (!policy) throw new Error(`no caller policy for ${name}`);
  return policy;
}

/**
 * Per-method RBAC: each caller identity (the URI SAN of its certificate) may call only
 * its methods, the same table the app enforces; health checks from any mesh peer.
 */
function rbacFilter(name: string) {
  const policies: Record<string, unknown> = {};
  for (const [caller, methods] of Object.entries(callersOf(name))) {
    policies[caller] = {
      permissions: [{ or_rules: { rules: methods.map((m) => ({ url_path: { path: { exact: `/${INTERNAL_PACKAGE}.${m}` } } })) } }],
      principals: [{ authenticated: { principal_name: { exact: spiffe(caller) } } }],
    };
  }
  policies.health = {
    permissions: [{ url_path: { path: { prefix: "/grpc.health.v1.Health/" } } }],
    principals: Object.keys(callersOf(name)).map((c) => ({ authenticated: { principal_name: { exact: spiffe(c) } } })),
  };
  return { name: "envoy.filters.http.rbac", typed_config: { "@type": T.rbac, rules: { action: "ALLOW", policies } } };
}

/** mTLS in front of the local app: only the services allowed to call this one get through, and only to their methods. */
function inboundListener(name: string, s: ServiceSpec) {
  return {
    name: "inbound_grpc",
    address: { socket_address: { address: "0.0.0.0", port_value: s.port } },
    filter_chains: [
      {
        transport_socket: {
          name: "envoy.transport_sockets.tls",
          typed_config: {
            "@type": T.downstreamTls,
            require_client_certificate: true,
            common_tls_context: {
              alpn_protocols: ["h2"],
              tls_certificates: [cert(name)],
              validation_context: {
                trusted_ca: { filename: `${topo.certDir}/ca.pem` },
                match_typed_subject_alt_names: Object.keys(callersOf(name)).map((c) => ({ san_type: "URI", matcher: { exact: spiffe(c) } })),
              },
            },
          },
        },
        filters: [
          hcm(`inbound_${name.replace(/-/g, "_")}`, name, {
            name: "local",
            virtual_hosts: [{ name: "local", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "local_service", timeout: topo.policy.requestTimeout } }] }],
          }, {
            http_filters: [rbacFilter(name), ...router],
            http2_protocol_options: { max_concurrent_streams: 1024 },
            // The app sees who called in x-forwarded-client-cert (identity checks stay in the app too).
            forward_client_cert_details: "SANITIZE_SET",
            set_current_client_cert_details: { uri: true },
          }),
        ],
      },
    ],
  };
}

/** Where the public listener's certificate (a kubernetes.io/tls Secret) is mounted. */
const PUBLIC_TLS_DIR = "/etc/meshchat/public-tls";

/**
 * The edge's public WebSocket/HTTP listener: TLS (HTTPS and wss://) with the public
 * certificate, long-lived upgrades, no client certificates (clients authenticate with tokens).
 */
function publicListener(name: string, s: ServiceSpec) {
  const pub = s.public!;
  return {
    name: "public_https",
    address: { socket_address: { address: "0.0.0.0", port_value: pub.port } },
    filter_chains: [
      {
        transport_socket: {
          name: "envoy.transport_sockets.tls",
          typed_config: {
            "@type": T.downstreamTls,
            common_tls_context: {
              alpn_protocols: ["http/1.1"],
              tls_params: { tls_minimum_protocol_version: "TLSv1_2" },
              tls_certificates: [{ certificate_chain: { filename: `${PUBLIC_TLS_DIR}/tls.crt` }, private_key: { filename: `${PUBLIC_TLS_DIR}/tls.key` } }],
            },
          },
        },
        filters: [
          hcm("public_http", name, {
            name: "public",
            virtual_hosts: [{ name: "public", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "local_http", timeout: "0s", idle_timeout: pub.idleTimeout } }] }],
          }, {
            upgrade_configs: [{ upgrade_type: "websocket" }],
            stream_idle_timeout: pub.idleTimeout,
            common_http_protocol_options: { idle_timeout: pub.idleTimeout },
            use_remote_address: true,
          }),
        ],
      },
    ],
  };
}

/** Plain HTTP/2 on loopback from the app; mTLS, balancing and retries to the upstream. */
function outboundListener(from: string, to: string) {
  const up = topo.services[to]!;
  const r = topo.policy.retry;
  const route: Record<string, unknown> = {
    cluster: to,
    timeout: topo.policy.requestTimeout,
    retry_policy: { retry_on: r.retryOn, num_retries: r.numRetries, per_try_timeout: r.perTryTimeout, retry_back_off: { base_interval: "0.05s", max_interval: "1s" } },
  };
  if (up.hashHeader) route.hash_policy = [{ header: { header_name: up.hashHeader } }];
  if (to === "edge") route.hash_policy = [{ header: { header_name: "x-edge-id" } }];
  return {
    name: `outbound_${to.replace(/-/g, "_")}`,
    address: { socket_address: { address: "127.0.0.1", port_value: up.port + topo.outboundPortOffset } },
    filter_chains: [
      {
        filters: [
          hcm(`outbound_${to.replace(/-/g, "_")}`, from, {
            name: to,
            virtual_hosts: [{ name: to, domains: ["*"], routes: [{ match: { prefix: "/" }, route }] }],
          }, { http2_protocol_options: {} }),
        ],
      },
    ],
  };
}

function upstreamCluster(from: string, to: string) {
  const up = topo.services[to]!;
  const p = topo.policy;
  const ringHash = up.hashHeader !== undefined || to === "edge";
  return {
    name: to,
    type: "STRICT_DNS",
    dns_lookup_family: "V4_ONLY",
    connect_timeout: p.connectTimeout,
    lb_policy: ringHash ? "RING_HASH" : "ROUND_ROBIN",
    ...(ringHash ? { ring_hash_lb_config: { minimum_ring_size: 1024 } } : {}),
    typed_extension_protocol_options: http2Options,
    load_assignment: {
      cluster_name: to,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: `${to}.${topo.namespace}.svc.cluster.local`, port_value: up.port } } } }] }],
    },
    transport_socket: {
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": T.upstreamTls,
        sni: to,
        common_tls_context: {
          alpn_protocols: ["h2"],
          tls_certificates: [cert(from)],
          validation_context: { trusted_ca: { filename: `${topo.certDir}/ca.pem` }, match_typed_subject_alt_names: [{ san_type: "URI", matcher: { exact: spiffe(to) } }] },
        },
      },
    },
    health_checks: [
      {
        timeout: p.healthCheck.timeout,
        interval: p.healthCheck.interval,
        unhealthy_threshold: p.healthCheck.unhealthyThreshold,
        healthy_threshold: p.healthCheck.healthyThreshold,
        grpc_health_check: { service_name: "" },
      },
    ],
    outlier_detection: {
      consecutive_5xx: p.outlier.consecutive5xx,
      interval: p.outlier.interval,
      base_ejection_time: p.outlier.baseEjectionTime,
      max_ejection_percent: p.outlier.maxEjectionPercent,
    },
    circuit_breakers: {
      thresholds: [
        {
          priority: "DEFAULT",
          max_connections: p.circuitBreaker.maxConnections,
          max_pending_requests: p.circuitBreaker.maxPendingRequests,
          max_requests: p.circuitBreaker.maxRequests,
          retry_budget: { budget_percent: { value: p.retry.budgetPercent }, min_retry_concurrency: p.retry.minRetryConcurrency },
        },
      ],
    },
  };
}

function localCluster(name: string, port: number, http2: boolean) {
  return {
    name,
    type: "STATIC",
    connect_timeout: topo.policy.connectTimeout,
    ...(http2 ? { typed_extension_protocol_options: http2Options } : {}),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }] },
  };
}

/**
 * Envoy's own metrics for Prometheus: only /stats/prometheus of the admin interface,
 * on the pod's address (adminPort + 1). The admin port itself stays on loopback: it
 * also serves /quitquitquit and config dumps.
 */
function statsListener() {
  return {
    name: "envoy_stats",
    address: { socket_address: { address: "0.0.0.0", port_value: topo.adminPort + 1 } },
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: {
          "@type": T.hcm,
          stat_prefix: "envoy_stats",
          codec_type: "AUTO",
          route_config: { name: "envoy_stats", virtual_hosts: [{ name: "envoy_stats", domains: ["*"], routes: [{ match: { path: "/stats/prometheus" }, route: { cluster: "envoy_admin" } }] }] },
          http_filters: router,
        },
      }],
    }],
  };
}

function bootstrap(name: string, s: ServiceSpec) {
  const listeners: object[] = [inboundListener(name, s), ...s.calls.map((to) => outboundListener(name, to)), statsListener()];
  const clusters: object[] = [localCluster("local_service", s.port + topo.appPortOffset, true), ...s.calls.map((to) => upstreamCluster(name, to)), localCluster("envoy_admin", topo.adminPort, false)];
  if (s.public) {
    listeners.push(publicListener(name, s));
    clusters.push(localCluster("local_http", s.public.port + topo.appPortOffset, false));
  }
  clusters.push({
    name: "otel_collector",
    type: "STRICT_DNS",
    connect_timeout: topo.policy.connectTimeout,
    typed_extension_protocol_options: http2Options,
    load_assignment: { cluster_name: "otel_collector", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: topo.otelCollector.host, port_value: topo.otelCollector.port } } } }] }] },
  });
  return {
    node: { id: `${name}-sidecar`, cluster: name },
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: topo.adminPort } } },
    static_resources: { listeners, clusters },
  };
}

/** Where the token keys (Secret meshchat-auth-keys) are mounted. */
const AUTH_DIR = "/etc/meshchat/auth";

/** Deployment + Service per service, the app and its Envoy sidecar side by side. */
function k8s(name: string, s: ServiceSpec): object[] {
  const ns = topo.namespace;
  const appPort = s.port + topo.appPortOffset;
  const env = [
    { name: "PROFILE", value: "production" },
    { name: "INSTANCE_ID", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "BIND_HOST", value: "127.0.0.1" },
    { name: "ADVERTISE_HOST", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    { name: `${name === "message-store" ? "STORE" : name.toUpperCase()}_GRPC_PORT`, value: String(appPort) },
    ...(s.public ? [{ name: "EDGE_HTTP_PORT", value: String(s.public.port + topo.appPortOffset) }] : []),
    // The sidecar terminates mTLS, so the app speaks plaintext on loopback only.
    { name: "TLS_ENABLED", value: "false" },
    // Calls go through the sidecar (static *_ADDRS below); etcd keeps membership, leases and routes.
    { name: "MESH_SIDECAR", value: "true" },
    ...["chat", "message-store", "presence", "notifier"].filter((x) => s.calls.includes(x)).map((x) => ({ name: `${x === "message-store" ? "STORE" : x.toUpperCase()}_ADDRS`, value: `127.0.0.1:${topo.services[x]!.port + topo.outboundPortOffset}` })),
    { name: "METRICS_HOST", value: "0.0.0.0" },
    // etcd wants a client certificate: the service's own mesh certificate.
    { name: "ETCD_CERT_FILE", value: `${topo.certDir}/${name}.pem` },
    { name: "ETCD_KEY_FILE", value: `${topo.certDir}/${name}-key.pem` },
    // One token key pair for every instance: chat signs, edges verify (docs/security.md).
    ...(name === "chat" ? [{ name: "AUTH_PRIVATE_KEY_FILE", value: `${AUTH_DIR}/private.pem` }] : []),
    ...(name === "edge" ? [{ name: "AUTH_PUBLIC_KEY_FILE", value: `${AUTH_DIR}/public.pem` }] : []),
    // What the process must start with (glibc's arenas for the edge: internal/launcher/node-flags.ts).
    ...Object.entries(serviceEnv(name)).map(([k, value]) => ({ name: k, value })),
  ];
  // Each process mounts only the key it uses: chat the private key, edges the public one.
  const authKey = name === "chat" ? "private.pem" : name === "edge" ? "public.pem" : undefined;
  const appMounts = [{ name: "certs", mountPath: topo.certDir, readOnly: true }, ...(authKey ? [{ name: "auth-keys", mountPath: AUTH_DIR, readOnly: true }] : [])];
  const envFrom = [{ configMapRef: { name: "meshchat-backends" } }, { secretRef: { name: "meshchat-backend-secrets" } }];
  // "envoy-metrics": the sidecar's /stats/prometheus (scrape it by port name; prometheus.io/port names the app's).
  const ports = [{ name: "grpc", containerPort: s.port }, { name: "metrics", containerPort: s.port + 2000 }, { name: "envoy-metrics", containerPort: topo.adminPort + 1 }, ...(s.public ? [{ name: "ws", containerPort: s.public.port }] : [])];
  return [
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: ns, labels: { app: name } },
      spec: {
        replicas: s.replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name }, annotations: { "prometheus.io/scrape": "true", "prometheus.io/port": String(s.port + 2000) } },
          spec: {
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name,
                image: topo.image,
                args: [...SERVICE_NODE_FLAGS, `dist/cmd/${name}/main.js`],
                env: [...env, { name: "METRICS_PORT", value: String(s.port + 2000) }],
                envFrom,
                volumeMounts: appMounts,
                // Health is grpc.health.v1 on the app port (the kubelet probes inside the pod).
                readinessProbe: { grpc: { port: appPort }, periodSeconds: 5 },
                livenessProbe: { grpc: { port: appPort }, periodSeconds: 10, failureThreshold: 3 },
                resources: { requests: { cpu: "500m", memory: "512Mi" }, limits: { memory: "2Gi" } },
              },
              {
                name: "envoy",
                image: topo.envoyImage,
                args: ["-c", "/etc/envoy/envoy.yaml", "--drain-time-s", "20"],
                ports,
                volumeMounts: [
                  { name: "envoy-config", mountPath: "/etc/envoy" },
                  { name: "certs", mountPath: topo.certDir, readOnly: true },
                  ...(s.public ? [{ name: "public-tls", mountPath: PUBLIC_TLS_DIR, readOnly: true }] : []),
                ],
                lifecycle: { preStop: { exec: { command: ["sh", "-c", "sleep 15"] } } },
              },
            ],
            volumes: [
              { name: "envoy-config", configMap: { name: `${name}-envoy` } },
              { name: "certs", secret: { secretName: `${name}-mesh-cert` } },
              ...(authKey ? [{ name: "auth-keys", secret: { secretName: "meshchat-auth-keys", items: [{ key: authKey, path: authKey }] } }] : []),
              ...(s.public ? [{ name: "public-tls", secret: { secretName: `${name}-public-tls` } }] : []),
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns, labels: { app: name } },
      // Headless: each sidecar balances over the pods itself (round robin / ring hash).
      spec: { clusterIP: "None", selector: { app: name }, ports: [{ name: "grpc", port: s.port, targetPort: s.port }] },
    },
    ...(s.public
      ? [{ apiVersion: "v1", kind: "Service", metadata: { name: `${name}-public`, namespace: ns }, spec: { type: "LoadBalancer", selector: { app: name }, ports: [{ name: "ws", port: 443, targetPort: s.public.port }] } }]
      : []),
    ...(s.replicas > 1 ? [{ apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name, namespace: ns }, spec: { maxUnavailable: 1, selector: { matchLabels: { app: name } } } }] : []),
    ...(name === "edge" || name === "chat"
      ? [{
          apiVersion: "autoscaling/v2",
          kind: "HorizontalPodAutoscaler",
          metadata: { name, namespace: ns },
          spec: { scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name }, minReplicas: s.replicas, maxReplicas: name === "edge" ? 200 : 50, metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 60 } } }] },
        }]
      : []),
  ];
}

const SERVERS = ["etcd", "redis", "redis-cache", "postgres", "postgres-replica", "cassandra"] as const;
const podsOf = (apps: string[]) => ({ podSelector: { matchExpressions: [{ key: "app", operator: "In", values: apps }] } });
const tcp = (port: number) => ({ protocol: "TCP", port });
const policy = (name: string, app: string, spec: object) => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name, namespace: topo.namespace },
  spec: { podSelector: { matchLabels: { app } }, ...spec },
});

/**
 * Default deny, then exactly the traffic the design needs: callers to the service
 * ports (who may call whom is internal/grpc/caller-policy.ts), services to the servers
 * they use, DNS, the collector, Prometheus to the metrics ports, the internet to the
 * edge's public port, and the notifier to push providers over HTTPS.
 */
function networkPolicies(): object[] {
  const services = Object.entries(topo.services);
  const dns = { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }], ports: [{ protocol: "UDP", port: 53 }, tcp(53)] };
  const collector = { to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } } }], ports: [tcp(4317), tcp(4318)] };
  const prometheus = (port: number) => ({ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }], ports: [tcp(port)] });
  const out: object[] = [{
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "default-deny", namespace: topo.namespace },
    spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
  }];
  for (const [name, s] of services) {
    const ingress: object[] = [{ from: [podsOf(Object.keys(callersOf(name)))], ports: [tcp(s.port)] }, prometheus(s.port + 2000)];
    if (s.public) ingress.push({ ports: [tcp(s.public.port)] });
    const egress: object[] = [dns, collector];
    for (const to of s.calls) egress.push({ to: [podsOf([to])], ports: [tcp(topo.services[to]!.port)] });
    for (const b of s.backends) egress.push({ to: [podsOf([b])], ports: [tcp(topo.backendPorts[b]!)] });
    if (s.internetEgress) egress.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] } }], ports: [tcp(443)] });
    out.push(policy(name, name, { policyTypes: ["Ingress", "Egress"], ingress, egress }));
  }
  for (const server of SERVERS) {
    const clients = services.filter(([, s]) => s.backends.includes(server)).map(([n]) => n);
    const ingress: object[] = [{ from: [podsOf(clients)], ports: [tcp(topo.backendPorts[server]!)] }];
    const egress: object[] = [dns];
    // Replicas of one server talk to each other (etcd peers, Cassandra gossip).
    if (server === "etcd") { ingress.push({ from: [podsOf(["etcd"])], ports: [tcp(2380)] }, prometheus(2381)); egress.push({ to: [podsOf(["etcd"])], ports: [tcp(2380)] }); }
    // Standbys stream the primary's WAL.
    if (server === "postgres") ingress.push({ from: [podsOf(["postgres-replica"])], ports: [tcp(5432)] });
    if (server === "postgres-replica") egress.push({ to: [podsOf(["postgres"])], ports: [tcp(5432)] });
    if (server === "cassandra") { ingress.push({ from: [podsOf(["cassandra"])], ports: [tcp(7000)] }); egress.push({ to: [podsOf(["cassandra"])], ports: [tcp(7000)] }); }
    out.push(policy(server, server, { policyTypes: ["Ingress", "Egress"], ingress, egress }));
  }
  return out;
}

const header = "# Generated by mesh/gen.ts from mesh/topology.yaml. Do not edit by hand.\n";
fs.mkdirSync(path.join(out, "envoy"), { recursive: true });
fs.mkdirSync(path.join(out, "k8s"), { recursive: true });
const docs: object[] = [];
for (const [name, s] of Object.entries(topo.services)) {
  const text = YAML.stringify(bootstrap(name, s), { lineWidth: 0 });
  fs.writeFileSync(path.join(out, "envoy", `${name}.yaml`), header + text);
  docs.push(...k8s(name, s));
  docs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `${name}-envoy`, namespace: topo.namespace }, data: { "envoy.yaml": text } });
}
docs.push(...networkPolicies());
fs.writeFileSync(path.join(out, "k8s", "services.yaml"), header + docs.map((d) => YAML.stringify(d, { lineWidth: 0 })).join("---\n"));
console.log(`wrote ${Object.keys(topo.services).length} Envoy bootstraps and k8s/services.yaml to ${out}`);
