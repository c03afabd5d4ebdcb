import type cassandra from "cassandra-driver";

/*
 * The log's leader sends a tick's writes as small unlogged batches instead of one request each
 * (docs/cassandra-log.md, "Batches"). Each statement keeps its own timestamp, written into the
 * statement (`USING TIMESTAMP ?`), so a batch changes nothing about which write of a cell wins.
 * Batches stay under Cassandra's default warning thresholds: 5 KiB of data
 * (`batch_size_warn_threshold`, with a margin for the estimate) and 10 partitions
 * (`unlogged_batch_across_partitions_warn_threshold`, bounded here by 10 statements); a
 * statement larger than that goes alone.
 */

/** Statements in one batch at most: never more partitions than Cassandra's warning threshold. */
export const BATCH_MAX_STATEMENTS = 10;
/** Estimated bytes of data in one batch at most (Cassandra warns past 5 KiB). */
export const BATCH_MAX_BYTES = 4 * 1024;
/** Per statement, on top of its values: keys, column names, cell headers. */
const STATEMENT_OVERHEAD_BYTES = 64;

export interface TimedStatement {
  query: string;
  params: unknown[];
}

const timedForms = new Map<string, { query: string; at: "first" | "last" }>();

/**
 * The statement with a `USING TIMESTAMP ?` of its own, and where that parameter goes: an INSERT
 * takes it after its values (beside a `USING TTL ?`), an UPDATE or DELETE before its SET or WHERE.
 */
export function timestampedForm(query: string): { query: string; at: "first" | "last" } {
  let form = timedForms.get(query);
  if (form) return form;
  const q = query.trim();
  let m: RegExpExecArray | null;
  if (/^INSERT\b/i.test(q) && /\)\s+USING\s+TTL\s+\?$/i.test(q)) form = { query: `${q} AND TIMESTAMP ?`, at: "last" };
  else if (/^INSERT\b/i.test(q) && /\)$/.test(q)) form = { query: `${q} USING TIMESTAMP ?`, at: "last" };
  else if ((m = /^(UPDATE\s+\S+)\s+(SET\b[\s\S]*)$/i.exec(q))) form = { query: `${m[1]} USING TIMESTAMP ? ${m[2]}`, at: "first" };
  else if ((m = /^(DELETE\s+FROM\s+\S+)\s+(WHERE\b[\s\S]*)$/i.exec(q))) form = { query: `${m[1]} USING TIMESTAMP ? ${m[2]}`, at: "first" };
  else throw new Error(`no timestamped form for a statement of this shape: ${q.slice(0, 60)}`);
  if (/\bIF\b/i.test(q)) throw new Error("a conditional statement cannot share a plain batch");
  timedForms.set(query, form);
  return form;
}

/** The statement carrying its own timestamp. */
export function timestamped(s: TimedStatement, ts: cassandra.types.Long): TimedStatement {
  const form = timestampedForm(s.query);
  return { query: form.query, params: form.at === "first" ? [ts, ...s.params] : [...s.params, ts] };
}

/** A statement's data, estimated from its values (an overestimate for text of one-byte characters is fine). */
export function estimatedBytes(params: readonly unknown[]): number {
  let n = STATEMENT_OVERHEAD_BYTES;
  for (const p of params) {
    if (typeof p === "string") n += p.length * 3;
    else if (Buffer.isBuffer(p) || p instanceof Uint8Array) n += p.length;
    else if (p !== null && typeof p === "object" && !("low" in p && "high" in p)) n += JSON.stringify(p).length;
    else n += 8;
  }
  return n;
}

/**
 * Groups statements, in order, into batches within the bounds; a statement over the byte bound is
 * a group of its own (sent as a plain request).
 */
export function groupForBatches<T extends TimedStatement>(statements: readonly T[]): T[][] {
  const groups: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const s of statements) {
    const b = estimatedBytes(s.params);
    if (cur.length > 0 && (cur.length >= BATCH_MAX_STATEMENTS || bytes + b > BATCH_MAX_BYTES)) {
      groups.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(s);
    bytes += b;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/**
 * Every node holds every partition of the keyspace (no more nodes in a data centre than its
 * replication factor): a batch over many partitions then costs the coordinator no extra hop,
 * since it is a replica of all of them. On a larger cluster the leader sends plain requests.
 */
export function everyNodeHoldsEverything(client: cassandra.Client, keyspace: string): boolean {
  const ks = client.metadata?.keyspaces?.[keyspace] as { strategy?: string; strategyOptions?: Record<string, string> } | undefined;
  if (!ks?.strategy || !ks.strategyOptions) return false;
  const hosts = client.hosts.values();
  if (/SimpleStrategy$/.test(ks.strategy)) return hosts.length <= Number(ks.strategyOptions["replication_factor"] ?? 0);
  if (/NetworkTopologyStrategy$/.test(ks.strategy)) {
    const perDc = new Map<string, number>();
    for (const h of hosts) perDc.set(h.datacenter, (perDc.get(h.datacenter) ?? 0) + 1);
    return [...perDc].every(([dc, n]) => n <= Number(ks.strategyOptions![dc] ?? 0));
  }
  return false;
}
