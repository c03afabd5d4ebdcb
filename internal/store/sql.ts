/** The few things the SQL store needs from a PostgreSQL connection, embedded or server. */
export interface SqlExecutor {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[]; rowCount: number }>;
}

export interface SqlClient extends SqlExecutor {
  /** Runs fn in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * 64-bit integers as the drivers return them: a string (pg), a number or bigint
 * (PGlite), a Long (cassandra-driver). One place to read them, for every store.
 */
export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint" || typeof v === "string") return Number(v);
  if (typeof v === "object" && v !== null && typeof (v as { toNumber?: unknown }).toNumber === "function") return (v as { toNumber(): number }).toNumber();
  return 0;
}
