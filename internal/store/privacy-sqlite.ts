import { PresenceVisibility, type PrivacySettings } from "../../gen/chat/v1/client.js";
import { DEFAULT_PRIVACY, type PrivacyStore } from "./privacy.js";
import type { SqliteDb } from "./sqlite-db.js";

/** Privacy settings in the embedded SQLite store (schema-sqlite.ts migration 4): the same rules as privacy-sql.ts. */
export class SqlitePrivacyStore implements PrivacyStore {
  constructor(private readonly sql: SqliteDb) {}

  async privacySettings(userIds: string[]): Promise<PrivacySettings[]> {
    if (userIds.length === 0) return [];
    const rows = this.sql.q(`SELECT user_id, presence, group_adds FROM privacy_settings WHERE user_id IN (SELECT value FROM json_each(?1))`)
      .all(JSON.stringify(userIds)) as Array<{ user_id: string; presence: number; group_adds: number }>;
    const byId = new Map(rows.map((r) => [r.user_id, { presence: r.presence, groupAdds: r.group_adds }]));
    return userIds.map((id) => byId.get(id) ?? { ...DEFAULT_PRIVACY });
  }

  async setPrivacySettings(userId: string, change: PrivacySettings): Promise<PrivacySettings> {
    // 0 (UNSPECIFIED) keeps the stored value, or the default for a user without a row.
    const row = this.sql.q(
      `INSERT INTO privacy_settings (user_id, presence, group_adds)
         VALUES (?1, CASE WHEN ?2 = 0 THEN ?4 ELSE ?2 END, CASE WHEN ?3 = 0 THEN ?5 ELSE ?3 END)
       ON CONFLICT (user_id) DO UPDATE SET
         presence = CASE WHEN ?2 = 0 THEN privacy_settings.presence ELSE ?2 END,
         group_adds = CASE WHEN ?3 = 0 THEN privacy_settings.group_adds ELSE ?3 END
       RETURNING presence, group_adds`,
    ).get(userId, change.presence, change.groupAdds, DEFAULT_PRIVACY.presence, DEFAULT_PRIVACY.groupAdds) as { presence: number; group_adds: number };
    return { presence: row.presence, groupAdds: row.group_adds };
  }

  async presenceHidden(userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const rows = this.sql.q(`SELECT user_id FROM privacy_settings WHERE user_id IN (SELECT value FROM json_each(?1)) AND presence = ?2`)
      .all(JSON.stringify(userIds), PresenceVisibility.PRESENCE_VISIBILITY_NOBODY) as Array<{ user_id: string }>;
    return rows.map((r) => r.user_id);
  }
}
