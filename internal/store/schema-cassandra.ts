import cassandra from "cassandra-driver";
import { ConfigError } from "../config/env.js";
import { sleep } from "../run/sleep.js";

const { consistencies } = cassandra.types;

/**
 * Cassandra schema of the message store: a keyspace, then ordered migrations
 * recorded in <keyspace>.schema_migrations. Each statement is idempotent
 * (IF NOT EXISTS) so that two instances starting at once cannot break each
 * other; the version row is written with IF NOT EXISTS too. Never edit a
 * released migration: add the next one.
 *
 * Replication (used only when this creates the keyspace): CASSANDRA_REPLICATION,
 * a factor for SimpleStrategy (default 1: one node, a test cluster) or
 * `dc1:3,dc2:3` for NetworkTopologyStrategy (replicationOf). Or create the
 * keyspace beforehand, e.g.
 *   CREATE KEYSPACE meshchat WITH replication =
 *     {'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3};
 * (RF 3 per DC so that LOCAL_QUORUM and LOCAL_SERIAL survive one replica down);
 * the IF NOT EXISTS below then leaves it alone.
 */
export const CASSANDRA_MIGRATIONS: ReadonlyArray<(ks: string) => string[]> = [
  (ks) => [
    // Partitions hold a bounded seq range: see MESSAGES_PER_BUCKET in store-cassandra.ts.
    `CREATE TABLE IF NOT EXISTS ${ks}.messages (
       conversation_id text, bucket bigint, seq bigint,
       sender_id text, sender_device_id text, client_msg_id text, body text, sent_at bigint,
       PRIMARY KEY ((conversation_id, bucket), seq)) WITH CLUSTERING ORDER BY (seq ASC)`,
    // Dedupe index: (conversation, sender, client_msg_id) -> seq.
    `CREATE TABLE IF NOT EXISTS ${ks}.message_ids (
       conversation_id text, sender_id text, client_msg_id text, seq bigint,
       PRIMARY KEY ((conversation_id, sender_id), client_msg_id))`,
    // The commit point of appends: last_seq moves only by LWT, pending holds the intent being applied.
    `CREATE TABLE IF NOT EXISTS ${ks}.conversation_heads (
       conversation_id text PRIMARY KEY, last_seq bigint, pending blob)`,
    // Per-user sync log: a message reference (conversation_id, seq) or an encoded Event.
    `CREATE TABLE IF NOT EXISTS ${ks}.sync_log (
       user_id text, bucket bigint, pos bigint,
       at bigint, conversation_id text, seq bigint, event blob,
       PRIMARY KEY ((user_id, bucket), pos)) WITH CLUSTERING ORDER BY (pos ASC)`,
    // A hint of each user's log head (a max-register: written USING TIMESTAMP = head).
    `CREATE TABLE IF NOT EXISTS ${ks}.log_heads (user_id text PRIMARY KEY, head bigint)`,
    // Positions a (conversation, seq) entry was (or was about to be) written at for a user:
    // makes replays idempotent. Candidates are checked against sync_log; they expire.
    `CREATE TABLE IF NOT EXISTS ${ks}.log_index (
       user_id text, conversation_id text, seq bigint, pos bigint,
       PRIMARY KEY ((user_id, conversation_id), seq, pos)) WITH default_time_to_live = 2592000`,
    // Delivered / read pointers, moved by LWT only.
    `CREATE TABLE IF NOT EXISTS ${ks}.pointers (
       conversation_id text, user_id text, delivered_seq bigint, read_seq bigint,
       PRIMARY KEY ((conversation_id), user_id))`,
    // Settings that must never change for a keyspace (bucket sizes).
    `CREATE TABLE IF NOT EXISTS ${ks}.store_settings (name text PRIMARY KEY, value bigint)`,
  ],
  // 2: edits and deletions (docs/features.md). A deleted message keeps its row as a tombstone
  // (body '' and deleted_at set); deleted_messages lets unread counts leave deleted ones out.
  (ks) => [
    `ALTER TABLE ${ks}.messages ADD IF NOT EXISTS (edited_at bigint, edit_count int, deleted_at bigint)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.deleted_messages (conversation_id text, seq bigint, PRIMARY KEY ((conversation_id), seq))`,
    `CREATE TABLE IF NOT EXISTS ${ks}.hidden_messages (
       user_id text, conversation_id text, seq bigint,
       PRIMARY KEY ((user_id, conversation_id), seq))`,
  ],
  // 3: replies name an earlier message of their conversation.
  (ks) => [`ALTER TABLE ${ks}.messages ADD IF NOT EXISTS reply_to_seq bigint`],
  // 4: the outbox ids of the edits and deletions applied to a message (store-cassandra.ts changeMessage).
  (ks) => [`ALTER TABLE ${ks}.messages ADD IF NOT EXISTS changes set<bigint>`],
  // 5: log_index rows only ever expire (30-day TTL, never updated or deleted): time-window
  // compaction drops whole expired SSTables instead of rewriting them, and a short gc_grace
  // is safe where nothing is deleted (there is no delete for a repair to lose).
  (ks) => [
    `ALTER TABLE ${ks}.log_index WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1} AND gc_grace_seconds = 10800`,
  ],
  // 6: which data centre writes the keyspace (cassandra-writer-dc.ts).
  (ks) => [`CREATE TABLE IF NOT EXISTS ${ks}.store_roles (name text PRIMARY KEY, value text)`],
  // 7: the log's single writer (cassandra-leader.ts, docs/cassandra-log.md): the fence (moved by
  // lightweight transaction, once per leader), the epochs closed, each tick's intent (only an
  // epoch's last one is ever read; older ones are range-deleted), and the marks (durable heads).
  (ks) => [
    `CREATE TABLE IF NOT EXISTS ${ks}.log_leader (name text PRIMARY KEY, epoch bigint)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.log_closed (name text PRIMARY KEY, epoch bigint)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.log_intents (
       epoch bigint, tick bigint, heads map<text, bigint>,
       PRIMARY KEY ((epoch), tick)) WITH CLUSTERING ORDER BY (tick DESC)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.log_marks (key text PRIMARY KEY, value bigint)`,
    // Membership events (outbox ids) already in the logs, at which position of whose log: a
    // drain after a crash logs only those not found there.
    `CREATE TABLE IF NOT EXISTS ${ks}.log_outbox_done (id bigint PRIMARY KEY, positions map<text, bigint>) WITH default_time_to_live = 2592000`,
  ],
  // 8: sync-log entries expire (SYNC_LOG_RETENTION_S, docs/sync-log-trim.md) and are never
  // deleted, written in time order: the same compaction as log_index (migration 5).
  (ks) => [
    `ALTER TABLE ${ks}.sync_log WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1} AND gc_grace_seconds = 10800`,
  ],
  // 9: marks are written seldom (cassandra-leader.ts, MARK_EVERY_MS): each intent records the
  // tick through which every head is marked, so a new leader applies the intents after it.
  (ks) => [`ALTER TABLE ${ks}.log_intents ADD IF NOT EXISTS marked_through bigint`],
  // 10: what puts back the cells a tick changes in place (an edit, a deletion), written before
  // the tick's rows; a next leader applies those of ticks that never committed
  // (cassandra-leader.ts, docs/cassandra-log.md "Changes in place"). Range-deleted with the intents.
  (ks) => [
    `CREATE TABLE IF NOT EXISTS ${ks}.log_restore (
       epoch bigint, tick bigint, writes text,
       PRIMARY KEY ((epoch), tick)) WITH CLUSTERING ORDER BY (tick DESC)`,
  ],
];

const KEYSPACE_RE = /^[a-z][a-z0-9_]{0,47}$/;

export function checkKeyspace(ks: string): string {
  if (!KEYSPACE_RE.test(ks)) throw new Error(`invalid Cassandra keyspace name: ${ks}`);
  return ks;
}

async function awaitSchemaAgreement(client: cassandra.Client): Promise<void> {
  const deadline = Date.now() + 30_000;
  // checkSchemaAgreement exists in the driver but is missing from its typings.
  const metadata = client.metadata as unknown as { checkSchemaAgreement(): Promise<boolean> };
  while (!(await metadata.checkSchemaAgreement())) {
    if (Date.now() > deadline) throw new Error("Cassandra schema agreement not reached in 30 s");
    await sleep(200);
  }
}

/**
 * The keyspace's replication, as CASSANDRA_REPLICATION names it: a number is SimpleStrategy
 * with that factor (one node, a test cluster); `dc1:3,dc2:3` is NetworkTopologyStrategy with a
 * factor per data centre, which places each DC's replicas on distinct racks when the snitch
 * knows them (GossipingPropertyFileSnitch in the manifests). Throws on anything else.
 */
export function replicationOf(spec: string): string {
  const trimmed = spec.trim();
  if (/^\d{1,2}$/.test(trimmed) && Number(trimmed) >= 1) return `{'class': 'SimpleStrategy', 'replication_factor': ${Number(trimmed)}}`;
  const parts = trimmed.split(",").map((p) => p.trim().split(":"));
  if (parts.length === 0 || parts.some((p) => p.length !== 2 || !/^[A-Za-z0-9_-]{1,48}$/.test(p[0]!) || !/^\d{1,2}$/.test(p[1]!) || Number(p[1]) < 1)) {
    throw new ConfigError(`CASSANDRA_REPLICATION=${spec}: a replication factor (3) or data centres with theirs (dc1:3,dc2:3)`);
  }
  return `{'class': 'NetworkTopologyStrategy', ${parts.map(([dc, rf]) => `'${dc}': ${Number(rf)}`).join(", ")}}`;
}

export async function migrateCassandra(client: cassandra.Client, keyspace: string, replication = "1"): Promise<void> {
  const ks = checkKeyspace(keyspace);
  const strategy = replicationOf(replication);
  const ddl = async (cql: string) => {
    await client.execute(cql, [], { consistency: consistencies.localQuorum });
    await awaitSchemaAgreement(client);
  };
  await ddl(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${strategy}`);
  await ddl(`CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (version int PRIMARY KEY, applied_at bigint)`);
  const { rows } = await client.execute(`SELECT version FROM ${ks}.schema_migrations`, [], { consistency: consistencies.localQuorum });
  const done = new Set(rows.map((r) => Number(r["version"])));
  for (let v = 1; v <= CASSANDRA_MIGRATIONS.length; v++) {
    if (done.has(v)) continue;
    for (const stmt of CASSANDRA_MIGRATIONS[v - 1]!(ks)) await ddl(stmt);
    await client.execute(`INSERT INTO ${ks}.schema_migrations (version, applied_at) VALUES (?, ?) IF NOT EXISTS`, [v, Date.now()], {
      prepare: true,
      consistency: consistencies.localQuorum,
      serialConsistency: consistencies.localSerial,
    });
  }
}
