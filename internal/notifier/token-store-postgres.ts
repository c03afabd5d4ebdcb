import { PostgresSqlClient } from "../store/sql-postgres.js";
import type { SqlClient } from "../store/sql.js";
import type { ProviderName } from "./provider.js";
import { checkRegistration, type DeviceToken, type TokenStore } from "./token-store.js";

export interface PostgresTokenStoreOptions {
  /** Table name (tests use their own). Default push_tokens. */
  table?: string;
  /** Pool size. Default 4. */
  maxConnections?: number;
}

/**
 * Tokens in PostgreSQL: the production profile's store, shared by any number of
 * notifier instances. The table is created by a migration at start-up
 * (`CREATE TABLE IF NOT EXISTS`, under an advisory lock so instances starting
 * together do not race). Errors are the `pg` driver's; the gRPC boundary turns
 * connection failures into UNAVAILABLE.
 */
export class PostgresTokenStore implements TokenStore {
  private constructor(
    private readonly db: SqlClient,
    private readonly table: string,
  ) {}

  /** Connects and migrates; an unreachable server or a refused migration fails here, at start-up. */
  static async open(url: string, opts: PostgresTokenStoreOptions = {}): Promise<PostgresTokenStore> {
    const table = opts.table ?? "push_tokens";
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new Error(`bad table name: ${table}`);
    // The project's one way to a PostgreSQL server: its pool, timeouts and transactions.
    const db = new PostgresSqlClient(url, opts.maxConnections ?? 4);
    try {
      await migrate(db, table);
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
    return new PostgresTokenStore(db, table);
  }

  async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    checkRegistration(userId, deviceId, provider, token);
    // One statement: the token leaves any other device, and this device gets it.
    await this.db.query(
      `WITH moved AS (
         DELETE FROM ${this.table} WHERE provider = $3 AND token = $4 AND NOT (user_id = $1 AND device_id = $2)
       )
       INSERT INTO ${this.table} (user_id, device_id, provider, token, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id, device_id) DO UPDATE SET provider = EXCLUDED.provider, token = EXCLUDED.token, updated_at = EXCLUDED.updated_at`,
      [userId, deviceId, provider, token, Date.now()],
    );
  }

  async unregister(userId: string, deviceId: string): Promise<void> {
    await this.db.query(`DELETE FROM ${this.table} WHERE user_id = $1 AND device_id = $2`, [userId, deviceId]);
  }

  async listForUser(userId: string): Promise<DeviceToken[]> {
    const r = await this.db.query<{ device_id: string; provider: ProviderName; token: string }>(
      `SELECT device_id, provider, token FROM ${this.table} WHERE user_id = $1 ORDER BY device_id`,
      [userId],
    );
    return r.rows.map((x) => ({ deviceId: x.device_id, provider: x.provider, token: x.token }));
  }

  async removeToken(provider: ProviderName, token: string): Promise<void> {
    await this.db.query(`DELETE FROM ${this.table} WHERE provider = $1 AND token = $2`, [provider, token]);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** The schema, version 1. `updated_at` is epoch milliseconds (bigint) as in earlier installs. */
async function migrate(db: SqlClient, table: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`meshchat.migrate.${table}`]);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${table} (
      user_id    text   NOT NULL,
      device_id  text   NOT NULL,
      provider   text   NOT NULL CHECK (provider IN ('fcm', 'apns', 'webhook')),
      token      text   NOT NULL,
      updated_at bigint NOT NULL,
      PRIMARY KEY (user_id, device_id))`);
    await tx.query(`CREATE INDEX IF NOT EXISTS ${table}_by_token ON ${table} (provider, token)`);
  });
}
