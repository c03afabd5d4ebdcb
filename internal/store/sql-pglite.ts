import { PGlite } from "@electric-sql/pglite";
import type { SqlClient, SqlExecutor } from "./sql.js";

/**
 * Embedded PostgreSQL (PGlite, WASM) with its files in a local directory.
 * Use it for the embedded profile: one process owns the directory, no server to install.
 * PGlite runs one statement at a time, so transactions are queued, never interleaved.
 */
export class PgliteSqlClient implements SqlClient {
  private constructor(private readonly db: PGlite) {}

  static async open(dataDir: string): Promise<PgliteSqlClient> {
    const db = await PGlite.create(dataDir === ":memory:" ? undefined : dataDir);
    return new PgliteSqlClient(db);
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<{ rows: T[]; rowCount: number }> {
    const r = await this.db.query<T>(sql, params);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      fn({
        query: async <R>(sql: string, params: unknown[] = []) => {
          const r = await tx.query<R>(sql, params);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
      }),
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
