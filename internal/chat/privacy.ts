import type { Actor } from "../../gen/chat/internal/v1/chat.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { GroupAdds, type PrivacySettings } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import { validatePrivacy } from "../store/privacy.js";

/**
 * Users' privacy settings as chat applies them (docs/security.md, "Privacy"): reading and
 * changing one's own, and who may add whom to a group. Who sees whose presence is
 * PresenceAccess (presence-access.ts), from the store's ListContacts, cached per user.
 */
export class PrivacyRules {
  constructor(private readonly store: MessageStoreServiceClient) {}

  async get(actor: Actor): Promise<PrivacySettings> {
    return (await call(this.store, this.store.getPrivacySettings, { userIds: [actor.userId] })).settings[0]!;
  }

  async set(actor: Actor, change: PrivacySettings | undefined): Promise<PrivacySettings> {
    if (!change) throw ChatError.invalid("settings are required");
    validatePrivacy(change);
    return (await call(this.store, this.store.setPrivacySettings, { userId: actor.userId, settings: change })).settings!;
  }

  /**
   * Refuses, with PERMISSION_DENIED naming the first one, if any of `users` (other than the
   * actor) does not let the actor add them to a group: nobody may (GROUP_ADDS_NOBODY), or only
   * people they share a conversation with (GROUP_ADDS_CONTACTS) and the actor is not one.
   * Checked before anything is written, so a refused CreateGroup creates no group.
   */
  async requireMayAdd(actorId: string, users: Array<{ id: string; username: string }>): Promise<void> {
    const others = users.filter((u) => u.id !== actorId);
    if (others.length === 0) return;
    const { settings } = await call(this.store, this.store.getPrivacySettings, { userIds: others.map((u) => u.id) });
    let contacts: Set<string> | undefined;
    for (const [i, u] of others.entries()) {
      const adds = settings[i]?.groupAdds ?? GroupAdds.GROUP_ADDS_EVERYONE;
      if (adds === GroupAdds.GROUP_ADDS_NOBODY) throw ChatError.denied(`${u.username} does not accept being added to groups`);
      if (adds === GroupAdds.GROUP_ADDS_CONTACTS) {
        contacts ??= new Set((await call(this.store, this.store.listContacts, { userId: actorId })).userIds);
        if (!contacts.has(u.id)) throw ChatError.denied(`${u.username} accepts being added to groups only by people they share a conversation with`);
      }
    }
  }
}
