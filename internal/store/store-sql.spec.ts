import { describe, expect, it } from "vitest";
import { Conversation, ConversationKind, Member } from "../../gen/chat/v1/client.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { blockContract } from "../../test/support/block-contract.js";
import { contactsContract } from "../../test/support/contacts-contract.js";
import { pageBoundsContract } from "../../test/support/page-bounds-contract.js";
import { privacyContract } from "../../test/support/privacy-contract.js";
import { quotaContract } from "../../test/support/quota-contract.js";
import type { SqlClient } from "./sql.js";
import { SqlStore } from "./store-sql.js";

// The embedded profile's store (PGlite in memory); PostgreSQL and Cassandra run the same cases in test/servers.
pageBoundsContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
contactsContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
quotaContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
privacyContract("SqlStore on PGlite", async () => SqlStore.open(await PgliteSqlClient.open(":memory:")));
describe("blocks and account deletion: SqlStore on PGlite", () => {
  let store: Promise<SqlStore> | undefined;
  blockContract(() => (store ??= PgliteSqlClient.open(":memory:").then((db) => SqlStore.open(db))));
});

describe("SqlStore contact ids", () => {
  it("cost one query however many conversations the user is in; listConversations two (the conversations, then all their members)", async () => {
    const db = await PgliteSqlClient.open(":memory:");
    let queries = 0;
    const counted: SqlClient = { query: (sql, params) => { queries++; return db.query(sql, params); }, transaction: (fn) => db.transaction(fn), close: () => db.close() };
    const store = await SqlStore.open(counted);
    try {
      const users = Array.from({ length: 41 }, (_, i) => ({ id: `u${i}`, username: `user${i}`, passwordHash: "h", createdAtMs: 1 }));
      for (const u of users) await store.createUser(u);
      // u0 in 40 groups, each with one other user.
      for (let i = 1; i <= 40; i++) {
        const members = [users[0]!, users[i]!].map((u) => Member.create({ userId: u.id }));
        await store.createConversation(Conversation.create({ id: `g${i}`, kind: ConversationKind.CONVERSATION_KIND_GROUP, title: "t", members }), "u0", 100);
      }
      queries = 0;
      const ids = await store.contactIds("u0");
      expect({ queries, contacts: ids.length }).toEqual({ queries: 1, contacts: 41 });
      queries = 0;
      const list = await store.listConversations("u0");
      expect({ queries, conversations: list.length, members: list.every((c) => c.members.map((m) => m.userId).includes("u0") && c.members.length === 2) }).toEqual({ queries: 2, conversations: 40, members: true });
    } finally {
      await store.close();
    }
  });
});
