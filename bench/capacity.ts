/**
 * `make capacity`: the capacity model. Takes the assumptions of bench/capacity-model.yaml
 * and the per-instance figures `make bench` measured on this machine
 * (bench/results/latest.json), and prints, per component, the load at peak, the
 * instances needed, storage per year and what binds each one first.
 *
 *   node dist/bench/capacity.js [--model FILE] [--measured FILE] [--dau N]
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import YAML from "yaml";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Model {
  users: { dau: number; messagesPerUserPerDay: number; peakToAverage: number; devicesPerUser: number; onlineShareAtPeak: number; connectsPerDevicePerDay: number };
  traffic: { groupShare: number; meanGroupSize: number; meanTextBytes: number; heartbeatIntervalS: number; receiptsPerMessage: number };
  storage: { messageRowOverheadBytes: number; syncLogEntryBytes: number; syncLogRetentionDays: number; replicationFactor: number; compressionRatio: number };
  instances: { coresPerInstance: number; targetUtilisation: number; edgeMemoryGiB: number; maxSessionsPerEdge: number };
  assumed: {
    cassandraWritesPerCorePerS: number; redisOpsPerShardPerS: number; postgresWritesPerS: number; edgeFramesPerCorePerS: number;
    chatMessagesPerCorePerS: number; storeMessagesPerCorePerS: number; cassandraStatementsPerMessage: number; postgresListsPerCorePerS: number;
  };
}

/** What the bench measured, where it did (bench/results/latest.json); absent fields fall back to the model's `assumed`. */
export interface Measured {
  capacity?: Array<{ sessions: number; rssPerSessionKB: number; idleCpuPercent: number }>;
  throughput?: { cpuPerMessageUs?: Partial<Record<"edge" | "chat" | "store" | "presence" | "notifier", number>> };
  cassandra?: { statementsPerMessage?: number };
  /** What bench/run.ts writes: CPU µs per delivered 1:1 message by process, and (production) Cassandra requests per message. */
  cpu?: { microsPerMessage?: Record<string, number>; framesPerMessage?: number; cassandra?: { requests?: number; statements?: number } };
  /**
   * What bench/directory-list.ts writes: PostgreSQL's CPU per conversation list, and with the
   * lists routed to a replica, the primary's and the replica's CPU per list.
   */
  directory?: { postgresMicrosPerList?: number; replicaRouting?: { primaryMicrosPerList?: number; replicaMicrosPerList?: number } };
}

/** The CPU figures of a bench result, by the model's component names (the bench names processes). */
function cpuPerMessage(m: Measured): Partial<Record<"edge" | "chat" | "store" | "presence" | "notifier", number>> {
  const byProcess = m.cpu?.microsPerMessage ?? {};
  const fromBench = { edge: byProcess["edge"], chat: byProcess["chat"], store: byProcess["message-store"], presence: byProcess["presence"], notifier: byProcess["notifier"] };
  return { ...Object.fromEntries(Object.entries(fromBench).filter(([, v]) => v !== undefined)), ...m.throughput?.cpuPerMessageUs };
}

/**
 * Cassandra statements per message, as the model states it or as the production bench counts
 * them (a batch counts each of its statements: what the nodes write; results from before the
 * bench counted statements have requests only, one statement each then).
 */
function statementsPerMessage(m: Measured): number | undefined {
  return m.cassandra?.statementsPerMessage ?? m.cpu?.cassandra?.statements ?? m.cpu?.cassandra?.requests;
}

/**
 * The figures of the embedded bench, with the production bench's over them where it measured
 * them: 50M daily users run the production profile (mTLS, etcd, Cassandra), whose CPU per
 * message and Cassandra requests are the ones to size it with.
 */
export function mergeMeasured(embedded: Measured, production: Measured, directory: Measured = {}): Measured {
  return {
    ...embedded,
    ...(directory.directory ? { directory: directory.directory } : {}),
    throughput: { cpuPerMessageUs: { ...cpuPerMessage(embedded), ...cpuPerMessage(production) } },
    cassandra: { statementsPerMessage: statementsPerMessage(production) ?? statementsPerMessage(embedded) },
  };
}

export interface Row {
  component: string;
  load: string;
  instances: number;
  binds: string;
  source: "measured" | "assumed";
}

const DAY_S = 86_400;
/** Cores of a PostgreSQL node, as for Cassandra's: a primary is one machine, not a pod. */
const POSTGRES_NODE_CORES = 8;

/** One figure with where it came from. */
function figure(measured: number | undefined, assumed: number): { value: number; source: "measured" | "assumed" } {
  return measured !== undefined && Number.isFinite(measured) && measured > 0 ? { value: measured, source: "measured" } : { value: assumed, source: "assumed" };
}

export function plan(m: Model, measured: Measured): { rows: Row[]; storage: Array<{ what: string; perYearTB: number }>; peak: Record<string, number> } {
  const u = m.users;
  const t = m.traffic;
  const messagesPerS = (u.dau * u.messagesPerUserPerDay) / DAY_S;
  const peakMessagesPerS = messagesPerS * u.peakToAverage;
  // Sync-log entries: both members of a 1:1, every member of a group.
  const entriesPerMessage = (1 - t.groupShare) * 2 + t.groupShare * t.meanGroupSize;
  const peakEntriesPerS = peakMessagesPerS * entriesPerMessage;
  const connections = u.dau * u.onlineShareAtPeak * u.devicesPerUser;
  // Frames out: each entry to each online device of its user, plus receipts.
  const framesPerS = peakEntriesPerS * u.devicesPerUser * u.onlineShareAtPeak * (1 + t.receiptsPerMessage);
  const heartbeatsPerS = connections / t.heartbeatIntervalS;
  const cores = (work: number, perCore: number) => work / perCore / m.instances.targetUtilisation;
  const inst = (c: number) => Math.max(2, Math.ceil(c / m.instances.coresPerInstance));
  const cpu = cpuPerMessage(measured);
  const perCore = (us: number | undefined, assumed: number) => figure(us ? 1e6 / us : undefined, assumed);

  // Edge: memory per session and CPU per frame, whichever binds.
  const lastCapacity = measured.capacity?.at(-1);
  const rssKB = figure(lastCapacity?.rssPerSessionKB, 8);
  const sessionsPerEdgeByMemory = (m.instances.edgeMemoryGiB * 1024 * 1024) / rssKB.value;
  // The bench measures the edge's CPU per message, which is several frames (the send, its Sent,
  // the events to both users' devices, the receipt): per frame it is that over the frames the
  // bench counted. Results from before it counted frames are read as one frame a message, as
  // they were (which overstated the edges needed).
  const edgeFrames = perCore(cpu.edge !== undefined ? cpu.edge / (measured.cpu?.framesPerMessage ?? 1) : undefined, m.assumed.edgeFramesPerCorePerS);
  const edgesByMemory = Math.ceil(connections / Math.min(sessionsPerEdgeByMemory, m.instances.maxSessionsPerEdge));
  const edgesByCpu = inst(cores(framesPerS + heartbeatsPerS, edgeFrames.value));
  const memoryBinds = sessionsPerEdgeByMemory < m.instances.maxSessionsPerEdge;
  const chatRate = perCore(cpu.chat, m.assumed.chatMessagesPerCorePerS);
  const storeRate = perCore(cpu.store, m.assumed.storeMessagesPerCorePerS);
  const statements = figure(statementsPerMessage(measured), m.assumed.cassandraStatementsPerMessage);
  // Statements per message plus one sync-log write per entry beyond the two of a 1:1.
  const cassandraWritesPerS = peakMessagesPerS * statements.value + peakEntriesPerS;
  const redisOpsPerS = heartbeatsPerS + peakEntriesPerS * 0.1; // presence beats, plus the recent-history cache's writes
  // Each connect lists the device's conversations (two PostgreSQL queries): the directory read that grows with traffic.
  const peakListsPerS = ((u.dau * u.devicesPerUser * u.connectsPerDevicePerDay) / DAY_S) * u.peakToAverage;
  // Lists run on read replicas (internal/store/directory-reads-replica.ts); the primary answers
  // each with its WAL position only, which the directory bench measures apart when it can.
  const routed = measured.directory?.replicaRouting;
  const listRate = perCore(routed?.replicaMicrosPerList ?? measured.directory?.postgresMicrosPerList, m.assumed.postgresListsPerCorePerS);
  const listNodes = Math.ceil(cores(peakListsPerS, listRate.value) / POSTGRES_NODE_CORES);
  const primaryCores = routed?.primaryMicrosPerList !== undefined ? cores(peakListsPerS, 1e6 / Math.max(1, routed.primaryMicrosPerList)) : undefined;
  // One primary and the replicas the lists need; a load small enough for one node stays on the primary.
  const postgresNodes = listNodes <= 1 ? 1 : 1 + listNodes;
  const rows: Row[] = [
    {
      component: "edge",
      load: `${fmt(connections)} connections, ${fmt(framesPerS)} frames/s`,
      instances: Math.max(edgesByMemory, edgesByCpu),
      binds: edgesByMemory < edgesByCpu ? `CPU: ${fmt(edgeFrames.value)} frames/s per core`
        : memoryBinds ? `memory: ${fmt(sessionsPerEdgeByMemory)} sessions at ${rssKB.value.toFixed(1)} KB each` : `sessions: ${fmt(m.instances.maxSessionsPerEdge)} per edge (memory would allow ${fmt(sessionsPerEdgeByMemory)})`,
      source: edgesByMemory < edgesByCpu ? edgeFrames.source : memoryBinds ? rssKB.source : "assumed",
    },
    { component: "chat", load: `${fmt(peakMessagesPerS)} msg/s`, instances: inst(cores(peakMessagesPerS, chatRate.value)), binds: `CPU: ${fmt(chatRate.value)} msg/s per core`, source: chatRate.source },
    { component: "message-store (on Cassandra: log shards, one leader each; sharding not built)", load: `${fmt(peakMessagesPerS)} msg/s, ${fmt(peakEntriesPerS)} log entries/s`, instances: inst(cores(peakMessagesPerS, storeRate.value)), binds: `CPU: ${fmt(storeRate.value)} msg/s per core`, source: storeRate.source },
    {
      component: "cassandra",
      load: `${fmt(cassandraWritesPerS)} writes/s (x${m.storage.replicationFactor} replicas)`,
      instances: Math.max(m.storage.replicationFactor, Math.ceil((cassandraWritesPerS * m.storage.replicationFactor) / (m.assumed.cassandraWritesPerCorePerS * 8 * m.instances.targetUtilisation))),
      binds: `writes: ${statements.value} statements per message (${statements.source}), 8-core nodes`,
      source: "assumed",
    },
    { component: "redis (shards)", load: `${fmt(redisOpsPerS)} ops/s`, instances: Math.max(1, Math.ceil(redisOpsPerS / (m.assumed.redisOpsPerShardPerS * m.instances.targetUtilisation))), binds: "one core per shard", source: "assumed" },
    { component: "presence", load: `${fmt(heartbeatsPerS)} heartbeats/s`, instances: inst(cores(heartbeatsPerS, 50_000)), binds: "CPU: batched heartbeats", source: "assumed" },
    {
      component: "postgresql (directory; lists on connect)",
      load: `${fmt(peakListsPerS)} conversation lists/s`,
      instances: postgresNodes,
      binds: `CPU: ${fmt(listRate.value)} lists/s per core, ${POSTGRES_NODE_CORES}-core nodes${postgresNodes > 1 ? `: a primary and ${postgresNodes - 1} read replicas that serve the lists` : ""}${primaryCores !== undefined && postgresNodes > 1 ? ` (the primary: ${primaryCores.toFixed(1)} cores answering their WAL positions)` : ""}`,
      source: listRate.source,
    },
  ];
  // Storage: messages forever, sync logs for their retention window.
  const perYear = (bytesPerDay: number) => (bytesPerDay * 365 * m.storage.replicationFactor * m.storage.compressionRatio) / 1e12;
  const messagesBytesPerDay = u.dau * u.messagesPerUserPerDay * (t.meanTextBytes + m.storage.messageRowOverheadBytes);
  const logBytesPerDay = u.dau * u.messagesPerUserPerDay * entriesPerMessage * m.storage.syncLogEntryBytes;
  const storage = [
    { what: "messages (kept forever)", perYearTB: perYear(messagesBytesPerDay) },
    { what: `sync logs (written; ${m.storage.syncLogRetentionDays} days kept)`, perYearTB: perYear(logBytesPerDay) },
    { what: "sync logs held at any time", perYearTB: perYear((logBytesPerDay * m.storage.syncLogRetentionDays) / 365) },
  ];
  return { rows, storage, peak: { messagesPerS, peakMessagesPerS, peakEntriesPerS, connections, framesPerS, heartbeatsPerS } };
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return n.toFixed(n >= 10 ? 0 : 1);
}

export function render(m: Model, measured: Measured, measuredFrom: string): string {
  const { rows, storage, peak } = plan(m, measured);
  const first = [...rows].sort((a, b) => b.instances - a.instances)[0]!;
  return [
    `# Capacity at ${fmt(m.users.dau)} daily users`,
    "",
    `Peak: ${fmt(peak.peakMessagesPerS!)} messages/s (average ${fmt(peak.messagesPerS!)}), ${fmt(peak.peakEntriesPerS!)} sync-log entries/s, ${fmt(peak.connections!)} connections, ${fmt(peak.heartbeatsPerS!)} heartbeats/s.`,
    `Measured inputs from ${measuredFrom}; "assumed" rows use bench/capacity-model.yaml until the bench measures them.`,
    "",
    "| component | load at peak | instances | binds first | per-instance figure |",
    "|---|---|---:|---|---|",
    ...rows.map((r) => `| ${r.component} | ${r.load} | ${r.instances} | ${r.binds} | ${r.source} |`),
    "",
    "| storage, with replication and compression | TB per year |",
    "|---|---:|",
    ...storage.map((s) => `| ${s.what} | ${s.perYearTB.toFixed(0)} |`),
    "",
    `Most instances: ${first.component} (${first.instances}), bound by ${first.binds}.`,
    "",
  ].join("\n");
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const opts = new Command("capacity")
    .option("--model <file>", "assumptions", path.join(REPO, "bench", "capacity-model.yaml"))
    .option("--measured <file>", "what make bench measured", path.join(REPO, "bench", "results", "latest.json"))
    .option("--production <file>", "what the production bench measured (its CPU and Cassandra figures win)", path.join(REPO, "bench", "results", "production-quick.json"))
    .option("--directory <file>", "what bench/directory-list.ts measured (PostgreSQL per conversation list)", path.join(REPO, "bench", "results", "directory-list.json"))
    .option("--dau <n>", "daily users (overrides the model)", (v) => Number(v))
    .parse()
    .opts<{ model: string; measured: string; production: string; directory: string; dau?: number }>();
  const model = YAML.parse(fs.readFileSync(opts.model, "utf8")) as Model;
  if (opts.dau) model.users.dau = opts.dau;
  const read = (f: string) => (fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, "utf8")) as Measured) : {});
  const sources = [opts.measured, opts.production, opts.directory].filter((f) => fs.existsSync(f)).map((f) => path.relative(REPO, f));
  process.stdout.write(render(model, mergeMeasured(read(opts.measured), read(opts.production), read(opts.directory)), sources.join(", ") || "(no bench results yet)"));
}
