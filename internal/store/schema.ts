import type { SqlClient } from "./sql.js";

/**
 * Ordered migrations; each runs once, in its own transaction, recorded in
 * schema_migrations. Never edit a released one: add the next.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE users (
     id text PRIMARY KEY,
     username text NOT NULL UNIQUE,
     password_hash text NOT NULL,
     created_at bigint NOT NULL);
   CREATE TABLE conversations (
     id text PRIMARY KEY,
     kind smallint NOT NULL,
     title text NOT NULL DEFAULT '',
     created_by text NOT NULL,
     created_at bigint NOT NULL,
     last_seq bigint NOT NULL DEFAULT 0);
   CREATE TABLE members (
     conversation_id text NOT NULL,
     user_id text NOT NULL,
     joined_at bigint NOT NULL,
     delivered_seq bigint NOT NULL DEFAULT 0,
     read_seq bigint NOT NULL DEFAULT 0,
     muted boolean NOT NULL DEFAULT false,
     PRIMARY KEY (conversation_id, user_id));
   CREATE INDEX members_by_user ON members (user_id);
   CREATE TABLE messages (
     conversation_id text NOT NULL,
     seq bigint NOT NULL,
     sender_id text NOT NULL,
     sender_device_id text NOT NULL,
     client_msg_id text NOT NULL,
     body text NOT NULL,
     sent_at bigint NOT NULL,
     PRIMARY KEY (conversation_id, seq));
   CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_msg_id);
   CREATE TABLE log_heads (
     user_id text PRIMARY KEY,
     head bigint NOT NULL);
   CREATE TABLE sync_log (
     user_id text NOT NULL,
     pos bigint NOT NULL,
     at bigint NOT NULL,
     conversation_id text NOT NULL,
     seq bigint NOT NULL DEFAULT 0,
     event bytea,
     PRIMARY KEY (user_id, pos));`,
  // Revocable sessions (docs/security.md, "Sessions"): one row per log-in of a device, with
  // the SHA-256 of its current refresh token; ended_at = 0 while live.
  `CREATE TABLE sessions (
     id text PRIMARY KEY,
     user_id text NOT NULL,
     username text NOT NULL,
     device_id text NOT NULL,
     refresh_hash bytea NOT NULL,
     created_at bigint NOT NULL,
     last_used_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     ended_at bigint NOT NULL DEFAULT 0,
     end_reason text NOT NULL DEFAULT '');
   CREATE INDEX sessions_by_user ON sessions (user_id);`,
  // Quotas (docs/security.md, "Quotas"): the groups a user created in the last day, from an index.
  `CREATE INDEX conversations_by_creator ON conversations (created_by, created_at);`,
  // Privacy settings (docs/security.md, "Privacy"): a row once a user changes one; enum values of chat.v1.
  `CREATE TABLE privacy_settings (
     user_id text PRIMARY KEY,
     presence smallint NOT NULL,
     group_adds smallint NOT NULL);`,
  // 5: edits and deletions (docs/features.md). A deleted message keeps its row as a tombstone
  // (body '' and deleted_at set); the partial index counts a conversation's deleted unread ones.
  `ALTER TABLE messages ADD COLUMN IF NOT EXISTS edited_at bigint NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN IF NOT EXISTS edit_count integer NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN IF NOT EXISTS deleted_at bigint NOT NULL DEFAULT 0;
   CREATE INDEX IF NOT EXISTS messages_deleted ON messages (conversation_id, seq) WHERE deleted_at > 0;
   CREATE TABLE IF NOT EXISTS hidden_messages (
     user_id text NOT NULL,
     conversation_id text NOT NULL,
     seq bigint NOT NULL,
     PRIMARY KEY (user_id, conversation_id, seq));`,
  // 6: replies name an earlier message of their conversation.
  `ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_to_seq bigint NOT NULL DEFAULT 0;`,
  // 7: block lists and account deletion (docs/features.md). A deleted account keeps its row (so its
  // username is never given to anyone else) with deleted_at set and an empty password hash.
  `ALTER TABLE users ADD COLUMN IF NOT EXISTS deleted_at bigint NOT NULL DEFAULT 0;
   CREATE TABLE IF NOT EXISTS blocks (
     user_id text NOT NULL,
     blocked_id text NOT NULL,
     blocked_at bigint NOT NULL,
     PRIMARY KEY (user_id, blocked_id));
   CREATE INDEX IF NOT EXISTS blocks_by_blocked ON blocks (blocked_id);`,
  // 8: the sync log's trim takes the oldest entries first (docs/sync-log-trim.md).
  `CREATE INDEX IF NOT EXISTS sync_log_by_at ON sync_log (at);`,
];

export async function migrate(db: SqlClient): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at bigint NOT NULL)`);
  const { rows } = await db.query<{ v: number | null }>(`SELECT max(version) AS v FROM schema_migrations`);
  const current = rows[0]?.v ?? 0;
  for (let v = current + 1; v <= MIGRATIONS.length; v++) {
    await db.transaction(async (tx) => {
      // Several instances may start at once: the lock makes one of them apply the migration.
      await tx.query(`LOCK TABLE schema_migrations IN EXCLUSIVE MODE`);
      const again = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM schema_migrations WHERE version = $1`, [v]);
      if ((again.rows[0]?.n ?? 0) > 0) return;
      for (const stmt of MIGRATIONS[v - 1]!.split(/;\s*(?=\n|$)/).map((s) => s.trim()).filter(Boolean)) await tx.query(stmt);
      await tx.query(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, [v, Date.now()]);
    });
  }
}
