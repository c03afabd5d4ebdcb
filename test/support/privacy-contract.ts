import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupAdds, PresenceVisibility } from "../../gen/chat/v1/client.js";
import { DEFAULT_PRIVACY } from "../../internal/store/privacy.js";
import type { Store } from "../../internal/store/store.js";

/**
 * The privacy settings the directory keeps (PrivacyStore), written once and run against every
 * backend: defaults for users who set nothing, a change of one field keeps the other, and the
 * users who hide their presence are found among any set of ids.
 */
export function privacyContract(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  describe(`privacy settings: ${name}`, () => {
    let store: Store;
    const tag = randomUUID().slice(0, 8);
    const [ann, ben, cat] = ["ann", "ben", "cat"].map((n) => `p-${n}-${tag}`) as [string, string, string];

    beforeAll(async () => {
      store = await open();
      for (const id of [ann, ben, cat]) await store.createUser({ id, username: `p${id.slice(2, 5)}${tag}`, passwordHash: "h", createdAtMs: Date.now() });
    });
    afterAll(() => close(store));

    it("answers defaults for users who set nothing, and each field changes on its own", async () => {
      expect(await store.privacySettings([ann, ben])).toEqual([DEFAULT_PRIVACY, DEFAULT_PRIVACY]);
      expect(DEFAULT_PRIVACY).toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS, groupAdds: GroupAdds.GROUP_ADDS_EVERYONE });
      // Only the presence: group adds keep the default.
      expect(await store.setPrivacySettings(ann, { presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_UNSPECIFIED }))
        .toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_EVERYONE });
      // Then only group adds: the presence stays hidden.
      expect(await store.setPrivacySettings(ann, { presence: PresenceVisibility.PRESENCE_VISIBILITY_UNSPECIFIED, groupAdds: GroupAdds.GROUP_ADDS_NOBODY }))
        .toEqual({ presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_NOBODY });
      await store.setPrivacySettings(ben, { presence: PresenceVisibility.PRESENCE_VISIBILITY_UNSPECIFIED, groupAdds: GroupAdds.GROUP_ADDS_CONTACTS });
      expect(await store.privacySettings([ben, ann, cat])).toEqual([
        { presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS, groupAdds: GroupAdds.GROUP_ADDS_CONTACTS },
        { presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_NOBODY },
        DEFAULT_PRIVACY,
      ]);
      expect(await store.privacySettings([])).toEqual([]);
    });

    it("finds those who hide their presence, and forgets them when they show it again", async () => {
      await store.setPrivacySettings(cat, { presence: PresenceVisibility.PRESENCE_VISIBILITY_NOBODY, groupAdds: GroupAdds.GROUP_ADDS_UNSPECIFIED });
      expect([...(await store.presenceHidden([ann, ben, cat, "nobody-" + tag]))].sort()).toEqual([ann, cat].sort());
      await store.setPrivacySettings(cat, { presence: PresenceVisibility.PRESENCE_VISIBILITY_CONTACTS, groupAdds: GroupAdds.GROUP_ADDS_UNSPECIFIED });
      expect(await store.presenceHidden([ben, cat])).toEqual([]);
      expect(await store.presenceHidden([])).toEqual([]);
    });
  });
}
