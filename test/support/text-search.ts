import { DatabaseSync } from "node:sqlite";
import { Redis } from "ioredis";
import { createCassandraClient } from "../../internal/store/store-cassandra.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";

/** Whether a stored value (text, bytes, or a collection of them) holds `text`. */
function holds(value: unknown, text: string): boolean {
  if (typeof value === "string") return value.includes(text);
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8").includes(text);
  if (Array.isArray(value)) return value.some((v) => holds(v, text));
  if (value instanceof Set || value instanceof Map) return [...value.values()].some((v) => holds(v, text));
  return false;
}

/** The tables of an SQLite database (the embedded store's file) with a row holding `text`, read whole. */
export function sqliteTablesWith(file: string, text: string): string[] {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as Array<{ name: string }>).map((t) => t.name);
    return tables.filter((t) => (db.prepare(`SELECT * FROM "${t}"`).all() as Array<Record<string, unknown>>).some((row) => Object.values(row).some((v) => holds(v, text))));
  } finally {
    db.close();
  }
}

/** The columns (table.column) of the PostgreSQL database with a value holding `text`: every text and bytea column. */
export async function postgresColumnsWith(url: string, text: string): Promise<string[]> {
  const db = new PostgresSqlClient(url);
  try {
    const { rows } = await db.query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', 'character varying')`,
    );
    const found: string[] = [];
    for (const r of rows) {
      const where = r.data_type === "bytea" ? `position(convert_to($1, 'UTF8') in "${r.column_name}") > 0` : `position($1 in "${r.column_name}") > 0`;
      const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${r.table_name}" WHERE ${where}`, [text]);
      if (n.rows[0]!.n > 0) found.push(`${r.table_name}.${r.column_name}`);
    }
    return found;
  } finally {
    await db.close();
  }
}

/** The tables of the Cassandra keyspace with a row holding `text`, read whole (every row, every column). */
export async function cassandraTablesWith(contactPoints: string[], localDc: string, keyspace: string, text: string): Promise<string[]> {
  const client = createCassandraClient(contactPoints, localDc);
  try {
    const tables = (await client.execute(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, [keyspace])).rows.map((r) => String(r["table_name"]));
    const found: string[] = [];
    for (const t of tables) {
      let pageState: string | undefined;
      do {
        const page = await client.execute(`SELECT * FROM ${keyspace}.${t}`, [], { fetchSize: 1_000, pageState });
        if (page.rows.some((row) => Object.values(row as Record<string, unknown>).some((v) => holds(v, text)))) { found.push(t); break; }
        pageState = page.pageState ?? undefined;
      } while (pageState);
    }
    return found;
  } finally {
    await client.shutdown();
  }
}

/** The Redis keys under `prefix` with a value holding `text` (strings, hashes, sorted sets, lists, sets). */
export async function redisKeysWith(url: string, prefix: string, text: string): Promise<string[]> {
  const redis = new Redis(url);
  try {
    const found: string[] = [];
    for (const key of await redis.keys(`${prefix}*`)) {
      const type = await redis.type(key);
      const values = type === "zset" ? await redis.zrangeBuffer(key, "0", "-1")
        : type === "hash" ? Object.values(await redis.hgetallBuffer(key))
        : type === "list" ? await redis.lrangeBuffer(key, 0, -1)
        : type === "set" ? await redis.smembersBuffer(key)
        : type === "string" ? [await redis.getBuffer(key)] : [];
      if (values.some((v) => v !== null && holds(v, text))) found.push(key);
    }
    return found;
  } finally {
    redis.disconnect();
  }
}
