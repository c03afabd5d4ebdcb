import type { DatabaseSync, StatementSync } from "node:sqlite";

/** One SQLite connection with its prepared statements cached and a synchronous write transaction. */
export class SqliteDb {
  private readonly statements = new Map<string, StatementSync>();

  constructor(readonly db: DatabaseSync) {}

  /** The cached prepared statement of `sql` (preparing costs more than running a small one). */
  q(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /**
   * Runs fn in one write transaction: committed if it returns, rolled back if it
   * throws. fn is synchronous, so nothing else in this process runs in between;
   * IMMEDIATE takes the file's write lock first, so another process waits.
   */
  tx<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      throw err;
    }
  }
}
