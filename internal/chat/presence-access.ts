import { ChatError } from "../errors/chat-error.js";
import { trimOldest } from "../run/trim-oldest.js";

/** At most this many users per presence request (subscribe or query). */
export const MAX_PRESENCE_IDS = 500;

/** A user's contacts (everyone who shares a conversation with them, themselves included) and those of them who hide their presence. */
export interface Contacts {
  userIds: string[];
  hiddenUserIds: string[];
}

interface Entry {
  contacts: Promise<{ ids: Set<string>; hidden: Set<string> }>;
  at: number;
}

export interface PresenceAccessOptions {
  /** How long a user's contacts are used without asking the store again; changes made through chat drop them at once (signals). */
  ttlMs: number;
  /** Users whose contacts are kept (least recently used go first). */
  maxEntries: number;
  now?: () => number;
}

/**
 * Who may see whose presence (docs/security.md, "Privacy"): only users who share a
 * conversation, and nobody sees one who hides it. Domain policy, so it lives in chat
 * and not in the stateless edge; each user's contacts come from one store query
 * (ListContacts) and are cached per user, since every presence subscribe and query asks.
 *
 * The cache is exact as far as chat knows: a membership change drops the members'
 * entries and a privacy change drops every entry that names the user, on every chat
 * instance (directory signals), and a refusal is always decided on a fresh read. What a
 * signal still on its way (or lost) can delay is a removal or a newly hidden user, by
 * at most the TTL.
 */
export class PresenceAccess {
  /** In order of last use (a Map keeps insertion order): the first entry is the one to evict. */
  private readonly cache = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly load: (userId: string) => Promise<Contacts>, private readonly opts: PresenceAccessOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * The users among `userIds` who hide their presence from `userId`. The whole request is
   * refused (PERMISSION_DENIED) if any of them is not a contact, so an outsider cannot tell
   * an unknown user from a hidden one. One's own presence is always one's own to see.
   */
  async hiddenAmong(userId: string, userIds: string[]): Promise<string[]> {
    if (userIds.length > MAX_PRESENCE_IDS) throw ChatError.invalid(`at most ${MAX_PRESENCE_IDS} users per request`);
    const cached = this.cached(userId);
    let contacts = await (cached ?? this.loadInto(userId));
    // A new contact may be newer than the entry (a conversation opened a moment ago through
    // another chat instance, its signal still on the way): a refusal is decided on fresh data.
    if (cached && userIds.some((id) => !contacts.ids.has(id))) contacts = await this.loadInto(userId);
    if (userIds.some((id) => !contacts.ids.has(id))) throw ChatError.denied("presence is visible only for users you share a conversation with");
    return userIds.filter((id) => id !== userId && contacts.hidden.has(id));
  }

  /** These users' conversations changed: their contacts are asked of the store again. */
  forgetUsers(userIds: Iterable<string>): void {
    for (const id of userIds) this.cache.delete(id);
  }

  /** This user's privacy changed: every entry that names them as a contact goes, with their own. */
  forgetContactsOf(userId: string): void {
    this.cache.delete(userId);
    for (const [id, e] of this.cache) {
      void e.contacts.then((c) => {
        // Only if the entry is still the one we looked at (a newer load already has the change).
        if (c.ids.has(userId) && this.cache.get(id) === e) this.cache.delete(id);
      }, () => {});
    }
  }

  /** The user's entry if it is fresh, now the most recently used. */
  private cached(userId: string): Entry["contacts"] | undefined {
    const hit = this.cache.get(userId);
    if (!hit || this.now() - hit.at >= this.opts.ttlMs) return undefined;
    this.cache.delete(userId);
    this.cache.set(userId, hit);
    return hit.contacts;
  }

  private loadInto(userId: string): Entry["contacts"] {
    const entry: Entry = {
      contacts: this.load(userId).then((c) => ({ ids: new Set(c.userIds), hidden: new Set(c.hiddenUserIds) })),
      at: this.now(),
    };
    this.cache.delete(userId);
    this.cache.set(userId, entry);
    trimOldest(this.cache, this.opts.maxEntries);
    entry.contacts.catch(() => {
      if (this.cache.get(userId) === entry) this.cache.delete(userId);
    });
    return entry.contacts;
  }
}
