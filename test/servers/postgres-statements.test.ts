import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import { createDatabase } from "../support/postgres-database.js";

/**
 * Statements with parameters run prepared on each pooled connection (planned once). A table
 * changed under a prepared statement by another instance (a rolling upgrade's migration) must
 * not make the statement fail from then on: PostgreSQL refuses a prepared plan whose result
 * columns changed, on every connection that holds one.
 */
let db: { url: string; drop: () => Promise<void> };
let client: PostgresSqlClient;
beforeAll(async () => {
  db = await createDatabase();
  client = new PostgresSqlClient(db.url, 1);
});
afterAll(async () => {
  await client?.close();
  await db?.drop();
});

describe("PostgresSqlClient's prepared statements", () => {
  it("answers as before after another client adds a column to a table the statement reads", async () => {
    await client.query("CREATE TABLE t (a int PRIMARY KEY)");
    await client.query("INSERT INTO t VALUES (1), (2)");
    const read = () => client.query<Record<string, unknown>>("SELECT * FROM t WHERE a = $1", [2]);
    expect((await read()).rows).toEqual([{ a: 2 }]);
    const other = new PostgresSqlClient(db.url, 1);
    await other.query("ALTER TABLE t ADD COLUMN b text NOT NULL DEFAULT 'x'");
    await other.close();
    expect((await read()).rows).toEqual([{ a: 2, b: "x" }]);
    expect((await read()).rows).toEqual([{ a: 2, b: "x" }]);
  });
});
