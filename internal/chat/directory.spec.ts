import { describe, expect, it } from "vitest";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { ConversationDirectory } from "./directory.js";

/** A store client that answers GetConversation and counts the calls (the unit under test is the cache). */
function fakeStore() {
  const loads: string[] = [];
  const getConversation = (req: { conversationId: string }, _md: unknown, _opts: unknown, cb: (err: null, res: object) => void) => {
    loads.push(req.conversationId);
    cb(null, { conversation: { id: req.conversationId, members: [{ userId: "u1", username: "ann" }] }, mutedUserIds: [], blocks: [] });
  };
  return { loads, client: { getConversation, getChannel: () => ({ getTarget: () => "ipv4:127.0.0.1:1" }) } as unknown as MessageStoreServiceClient };
}

describe("the conversation directory's cache", () => {
  it("keeps at most its size, evicting the least recently used", async () => {
    const { loads, client } = fakeStore();
    const dir = new ConversationDirectory(client, 2);
    await dir.get("a");
    await dir.get("b");
    await dir.get("a"); // a is now the most recently used
    await dir.get("c"); // evicts b
    expect(dir.size).toBe(2);
    await dir.get("a");
    await dir.get("b");
    expect(loads).toEqual(["a", "b", "c", "b"]);
  });
});
