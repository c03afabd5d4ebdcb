import pg from "pg";
import type { ProviderName } from "./provider.js";
import type { DeviceToken, TokenStore } from "./token-store.js";

/** Tokens in PostgreSQL (production profile: any number of notifier instances). */
export class PostgresTokenStore implements TokenStore {
  private constructor(private readonly pool: pg.Pool) {}

  static async open(url: string): Promise<PostgresTokenStore> {
    const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 3_000 });
    pool.on("error", () => {});
    await pool.query(`CREATE TABLE IF NOT EXISTS push_tokens (
      user_id text NOT NULL, device_id text NOT NULL, provider text NOT NULL, token text NOT NULL, updated_at bigint NOT NULL,
      PRIMARY KEY (user_id, device_id))`);
    await pool.query(`CREATE INDEX IF NOT EXISTS push_tokens_by_token ON push_tokens (provider, token)`);
    return new PostgresTokenStore(pool);
  }

  async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    await this.removeToken(provider, token);
    await this.pool.query(
      `INSERT INTO push_tokens (user_id, device_id, provider, token, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id, device_id) DO UPDATE SET provider = $3, token = $4, updated_at = $5`,
      [userId, deviceId, provider, token, Date.now()],
    );
  }
  async unregister(userId: string, deviceId: string): Promise<void> {
    await this.pool.query(`DELETE FROM push_tokens WHERE user_id = $1 AND device_id = $2`, [userId, deviceId]);
  }
  async listForUser(userId: string): Promise<DeviceToken[]> {
    const r = await this.pool.query<{ device_id: string; provider: ProviderName; token: string }>(`SELECT device_id, provider, token FROM push_tokens WHERE user_id = $1`, [userId]);
    return r.rows.map((x) => ({ deviceId: x.device_id, provider: x.provider, token: x.token }));
  }
  async removeToken(provider: ProviderName, token: string): Promise<void> {
    await this.pool.query(`DELETE FROM push_tokens WHERE provider = $1 AND token = $2`, [provider, token]);
  }
  async close(): Promise<void> {
    await this.pool.end();
  }
}
