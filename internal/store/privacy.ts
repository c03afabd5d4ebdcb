import { GroupAdds, PresenceVisibility, type PrivacySettings } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";

export type { PrivacySettings };

/** What a user who never changed anything has: presence for contacts, anyone may add them to groups. */
export const DEFAULT_PRIVACY: Readonly<PrivacySettings> = {
  presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS,
  groupAdds: GroupAdds.GROUP_ADDS_EVERYONE,
};

/** Refuses a value no client may store (UNRECOGNIZED); UNSPECIFIED means "keep". */
export function validatePrivacy(s: PrivacySettings): void {
  if (!(s.presence in PresenceVisibility) || s.presence === PresenceVisibility.UNRECOGNIZED) throw ChatError.invalid("unknown presence visibility");
  if (!(s.groupAdds in GroupAdds) || s.groupAdds === GroupAdds.UNRECOGNIZED) throw ChatError.invalid("unknown group adds setting");
}

/**
 * Users' privacy settings, in the directory beside the users (the `privacy_settings` table;
 * docs/security.md, "Privacy"). A user without a row has DEFAULT_PRIVACY. One file per
 * directory: privacy-sql.ts (PGlite, PostgreSQL, and the Cassandra store's directory) and
 * privacy-sqlite.ts (the embedded default).
 */
export interface PrivacyStore {
  /** Each user's settings, in order (defaults for users who set none). */
  privacySettings(userIds: string[]): Promise<PrivacySettings[]>;
  /** Sets the fields of `change` that are not UNSPECIFIED; returns the settings now. */
  setPrivacySettings(userId: string, change: PrivacySettings): Promise<PrivacySettings>;
  /** Those of `userIds` who show their presence to nobody. */
  presenceHidden(userIds: string[]): Promise<string[]>;
}
