import cassandra from "cassandra-driver";
import { metrics } from "@opentelemetry/api";
import { TalliedCounter } from "../telemetry/tallied-counter.js";

/**
 * What one request to Cassandra costs the cluster:
 * - `read`: a SELECT;
 * - `write`: a plain INSERT, UPDATE or DELETE (one replica round at the chosen consistency);
 * - `lwt`: a conditional one (`IF ...`): a Paxos round, four message delays across replicas;
 * - `batch` / `lwt_batch`: a batch, plain or holding a conditional statement (one Paxos round);
 * - `schema`: DDL (start-up only).
 */
export type CassandraRequestKind = "read" | "write" | "lwt" | "batch" | "lwt_batch" | "schema";

const CONDITION = /\bIF\s+(NOT\s+EXISTS\b|EXISTS\b|[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|<|>|\bIN\b))/i;

function statementKind(cql: string): Exclude<CassandraRequestKind, "batch" | "lwt_batch"> {
  const verb = /^\s*(\w+)/.exec(cql)?.[1]?.toUpperCase();
  if (verb === "CREATE" || verb === "ALTER" || verb === "DROP" || verb === "TRUNCATE") return "schema";
  if (verb === "SELECT") return "read";
  return CONDITION.test(cql) ? "lwt" : "write";
}

/**
 * What a statement does to which table, e.g. "select message_ids" or "insert sync_log": a
 * label of a few dozen values (the store's statements are fixed texts), so the production bench
 * can say which statements a message costs, not only how many.
 */
export function statementName(cql: string): string {
  const verb = /^\s*(\w+)/.exec(cql)?.[1]?.toLowerCase() ?? "?";
  const table = /\b(?:FROM|INTO|UPDATE|TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?)\s+(?:\w+\.)?(\w+)/i.exec(cql)?.[1] ?? "?";
  return `${verb} ${table}`;
}

interface StatementLabels { kind: Exclude<CassandraRequestKind, "batch" | "lwt_batch">; name: string }

/** Texts whose labels are kept; the store sends a few dozen fixed texts, so this bound is never reached by them. */
const MAX_LABELLED = 1_000;
const labelled = new Map<string, StatementLabels>();

/**
 * A statement's kind and name, worked out once per text: every request the store makes is
 * counted, and running the expressions above on each would repeat the same answer.
 */
function labelsOf(cql: string): StatementLabels {
  let l = labelled.get(cql);
  if (!l) {
    l = { kind: statementKind(cql), name: statementName(cql) };
    if (labelled.size < MAX_LABELLED) labelled.set(cql, l);
  }
  return l;
}

const textOf = (q: string | { query: string }) => (typeof q === "string" ? q : q.query);

/** The kind of a request as the driver's tracker sees it: one statement's text, or a batch's statements. */
export function requestKind(query: string | ReadonlyArray<string | { query: string }>): CassandraRequestKind {
  if (typeof query === "string") return labelsOf(query).kind;
  return query.some((q) => labelsOf(textOf(q)).kind === "lwt") ? "lwt_batch" : "batch";
}

/**
 * The driver's request tracker, counting every request the store makes by kind and outcome
 * (meshchat.cassandra.requests) and the statements batches carry (meshchat.cassandra.statements):
 * what a message costs in Cassandra round trips and Paxos rounds, which the production bench
 * divides by the messages it delivered (docs/cassandra-log.md).
 */
/** The driver's base class: its typings declare an interface, but it checks `instanceof` this class. */
export const RequestTrackerBase = (cassandra.tracker as unknown as { RequestTracker: new () => cassandra.tracker.RequestTracker }).RequestTracker;

export class CassandraRequestCounter extends RequestTrackerBase {
  // Counted per request and per statement: summed in place (tallied-counter.ts).
  private readonly requests: TalliedCounter;
  private readonly statements: TalliedCounter;

  constructor() {
    super();
    const m = metrics.getMeter("meshchat");
    this.requests = TalliedCounter.of(m, "meshchat.cassandra.requests", { description: "Requests to Cassandra, by kind (read, write, lwt: a Paxos round, batch, lwt_batch, schema) and outcome" });
    this.statements = TalliedCounter.of(m, "meshchat.cassandra.statements", { description: "Statements sent to Cassandra (a batch counts each of its statements), by kind and by statement (verb and table)" });
  }

  override onSuccess(_host: unknown, query: string | Array<{ query: string }>): void {
    this.count(query, "ok");
  }

  override onError(_host: unknown, query: string | Array<{ query: string }>): void {
    this.count(query, "error");
  }

  override shutdown(): void {}

  private count(query: string | Array<string | { query: string }>, outcome: "ok" | "error"): void {
    const kind = requestKind(query);
    this.requests.add(1, { "meshchat.cassandra.request.kind": kind, "meshchat.cassandra.request.outcome": outcome });
    for (const q of typeof query === "string" ? [query] : query) {
      const labels = labelsOf(textOf(q));
      this.statements.add(1, { "meshchat.cassandra.request.kind": labels.kind, "meshchat.cassandra.statement": labels.name });
    }
  }
}
