import { randomBytes } from "node:crypto";
import pg from "pg";

const RUN = randomBytes(4).toString("hex");
let uniq = 0;

/** A throwaway database on the servers' PostgreSQL (POSTGRES_URL), dropped by `drop`. */
export async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = process.env.POSTGRES_URL;
  if (!base) throw new Error("POSTGRES_URL is not set: source scripts/servers/env.sh");
  const name = `meshchat_test_${RUN}_${++uniq}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
