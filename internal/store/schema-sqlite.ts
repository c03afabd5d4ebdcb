import type { DatabaseSync } from "node:sqlite";

/**
 * The embedded store's schema, in SQLite's dialect. The same tables as the SQL
 * store's (schema.ts), so the two read alike; integers are SQLite's 64-bit
 * INTEGER. Ordered migrations; each runs once, in its own transaction,
 * recorded in schema_migrations. Never edit a released one: add the next.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE users (
     id TEXT PRIMARY KEY,
     username TEXT NOT NULL UNIQUE,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE conversations (
     id TEXT PRIMARY KEY,
     kind INTEGER NOT NULL,
     title TEXT NOT NULL DEFAULT '',
     created_by TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     last_seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
   CREATE TABLE members (
     conversation_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     joined_at INTEGER NOT NULL,
     delivered_seq INTEGER NOT NULL DEFAULT 0,
     read_seq INTEGER NOT NULL DEFAULT 0,
     muted INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;
   CREATE INDEX members_by_user ON members (user_id);
   CREATE TABLE messages (
     conversation_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     sender_id TEXT NOT NULL,
     sender_device_id TEXT NOT NULL,
     client_msg_id TEXT NOT NULL,
     body TEXT NOT NULL,
     sent_at INTEGER NOT NULL,
     PRIMARY KEY (conversation_id, seq));
   CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_msg_id);
   CREATE TABLE log_heads (
     user_id TEXT PRIMARY KEY,
     head INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE sync_log (
     user_id TEXT NOT NULL,
     pos INTEGER NOT NULL,
     at INTEGER NOT NULL,
     conversation_id TEXT NOT NULL,
     seq INTEGER NOT NULL DEFAULT 0,
     event BLOB,
     PRIMARY KEY (user_id, pos)) WITHOUT ROWID`,
  // Revocable sessions (docs/security.md, "Sessions"): one row per log-in of a device, with
  // the SHA-256 of its current refresh token; ended_at = 0 while live.
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     username TEXT NOT NULL,
     device_id TEXT NOT NULL,
     refresh_hash BLOB NOT NULL,
     created_at INTEGER NOT NULL,
     last_used_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     ended_at INTEGER NOT NULL DEFAULT 0,
     end_reason TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
   CREATE INDEX sessions_by_user ON sessions (user_id)`,
  // Quotas (docs/security.md, "Quotas"): the groups a user created in the last day, from an index.
  `CREATE INDEX conversations_by_creator ON conversations (created_by, created_at)`,
  // Privacy settings (docs/security.md, "Privacy"): a row once a user changes one; enum values of chat.v1.
  `CREATE TABLE privacy_settings (
     user_id TEXT PRIMARY KEY,
     presence INTEGER NOT NULL,
     group_adds INTEGER NOT NULL) WITHOUT ROWID`,
  // 5: edits and deletions (docs/features.md). A deleted message keeps its row as a tombstone
  // (body '' and deleted_at set); the partial index counts a conversation's deleted unread ones.
  `ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN edit_count INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX messages_deleted ON messages (conversation_id, seq) WHERE deleted_at > 0;
   CREATE TABLE hidden_messages (
     user_id TEXT NOT NULL,
     conversation_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (user_id, conversation_id, seq)) WITHOUT ROWID`,
  // 6: replies name an earlier message of their conversation.
  `ALTER TABLE messages ADD COLUMN reply_to_seq INTEGER NOT NULL DEFAULT 0`,
  // 7: block lists and account deletion (docs/features.md). A deleted account keeps its row (so its
  // username is never given to anyone else) with deleted_at set and an empty password hash.
  `ALTER TABLE users ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE blocks (
     user_id TEXT NOT NULL,
     blocked_id TEXT NOT NULL,
     blocked_at INTEGER NOT NULL,
     PRIMARY KEY (user_id, blocked_id)) WITHOUT ROWID;
   CREATE INDEX blocks_by_blocked ON blocks (blocked_id)`,
  // 8: the sync log's trim takes the oldest entries first (docs/sync-log-trim.md).
  `CREATE INDEX sync_log_by_at ON sync_log (at)`,
];

export function migrateSqlite(db: DatabaseSync): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`);
  // IMMEDIATE takes the write lock first, so of two processes opening one file, one migrates and the other then sees it done.
  db.exec("BEGIN IMMEDIATE");
  try {
    const current = Number((db.prepare(`SELECT coalesce(max(version), 0) AS v FROM schema_migrations`).get() as { v: number }).v);
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v - 1]!);
      db.prepare(`INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)`).run(v, Date.now());
    }
    db.exec("COMMIT");
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}
