import { PresenceVisibility, type PrivacySettings } from "../../gen/chat/v1/client.js";
import { DEFAULT_PRIVACY, type PrivacyStore } from "./privacy.js";
import type { SqlClient } from "./sql.js";

/** Privacy settings in the directory's SQL database (migration 4): PGlite, PostgreSQL, the Cassandra store's directory. */
export class SqlPrivacyStore implements PrivacyStore {
  constructor(private readonly db: SqlClient) {}

  async privacySettings(userIds: string[]): Promise<PrivacySettings[]> {
    if (userIds.length === 0) return [];
    const { rows } = await this.db.query<{ user_id: string; presence: number; group_adds: number }>(
      `SELECT user_id, presence, group_adds FROM privacy_settings WHERE user_id = ANY($1::text[])`,
      [userIds],
    );
    const byId = new Map(rows.map((r) => [r.user_id, { presence: Number(r.presence), groupAdds: Number(r.group_adds) }]));
    return userIds.map((id) => byId.get(id) ?? { ...DEFAULT_PRIVACY });
  }

  async setPrivacySettings(userId: string, change: PrivacySettings): Promise<PrivacySettings> {
    // 0 (UNSPECIFIED) keeps the stored value, or the default for a user without a row.
    const { rows } = await this.db.query<{ presence: number; group_adds: number }>(
      `INSERT INTO privacy_settings (user_id, presence, group_adds)
         VALUES ($1, CASE WHEN $2::smallint = 0 THEN $4::smallint ELSE $2::smallint END, CASE WHEN $3::smallint = 0 THEN $5::smallint ELSE $3::smallint END)
       ON CONFLICT (user_id) DO UPDATE SET
         presence = CASE WHEN $2::smallint = 0 THEN privacy_settings.presence ELSE $2::smallint END,
         group_adds = CASE WHEN $3::smallint = 0 THEN privacy_settings.group_adds ELSE $3::smallint END
       RETURNING presence, group_adds`,
      [userId, change.presence, change.groupAdds, DEFAULT_PRIVACY.presence, DEFAULT_PRIVACY.groupAdds],
    );
    return { presence: Number(rows[0]!.presence), groupAdds: Number(rows[0]!.group_adds) };
  }

  async presenceHidden(userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const { rows } = await this.db.query<{ user_id: string }>(
      `SELECT user_id FROM privacy_settings WHERE user_id = ANY($1::text[]) AND presence = $2`,
      [userIds, PresenceVisibility.PRESENCE_VISIBILITY_NOBODY],
    );
    return rows.map((r) => r.user_id);
  }
}
