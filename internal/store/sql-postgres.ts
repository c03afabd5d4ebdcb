import pg from "pg";
import type { SqlClient, SqlExecutor } from "./sql.js";

/**
 * Names for the statements run outside transactions, so each pooled connection parses and
 * plans a text once and then only binds and executes it: planning was half of PostgreSQL's
 * CPU for a conversation list (bench/directory-list.ts; docs/performance.md, "Prepared
 * statements"). The texts are the code's fixed ones (arrays travel as one parameter, never
 * as a placeholder per element); past `max` distinct texts the rest run unprepared, so a
 * text built at run time could not grow every connection's statements without bound.
 */
export class StatementNames {
  private readonly names = new Map<string, string | null>();

  constructor(private readonly max = 1_000) {}

  /** The text's name, or undefined to run it unprepared. */
  nameOf(sql: string): string | undefined {
    const known = this.names.get(sql);
    if (known !== undefined) return known ?? undefined;
    if (this.names.size >= this.max) return undefined;
    const name = `s${this.names.size}`;
    this.names.set(sql, name);
    return name;
  }

  /** Never prepare this text again (its name stays taken: a connection may hold it). */
  forget(sql: string): void {
    this.names.set(sql, null);
  }
}

/** PostgreSQL's refusal to run a prepared statement whose result columns changed under it. */
function isStalePlan(err: unknown): boolean {
  return (err as { code?: string }).code === "0A000" && /cached plan must not change result type/.test((err as Error).message);
}

/**
 * A PostgreSQL server through a `pg` pool. Use it for the production profile
 * (accounts, groups, membership; messages too on mid-sized installs).
 */
export class PostgresSqlClient implements SqlClient {
  private readonly pool: pg.Pool;
  private readonly statements = new StatementNames();

  constructor(url: string, max = 10) {
    this.pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 3_000, statement_timeout: 10_000 });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on("error", () => {});
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<{ rows: T[]; rowCount: number }> {
    const name = params.length > 0 ? this.statements.nameOf(sql) : undefined;
    try {
      const r = await this.pool.query(name ? { name, text: sql, values: params } : { text: sql, values: params });
      return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
    } catch (err) {
      if (!name || !isStalePlan(err)) throw err;
      // Another instance changed a table this statement reads (a rolling upgrade's migration):
      // the connections' prepared copies stay stale, so the text goes unprepared from now on.
      this.statements.forget(sql);
      const r = await this.pool.query(sql, params);
      return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const result = await fn({
        query: async <R>(sql: string, params: unknown[] = []) => {
          const r = await client.query(sql, params);
          return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
        },
      });
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
