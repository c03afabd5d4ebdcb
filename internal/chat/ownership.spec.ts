import { describe, expect, it } from "vitest";
import { ownerOf } from "../discovery/rendezvous.js";
import { movedConversations } from "./ownership.js";

const set = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `chat-${i}`, address: `127.0.0.1:${7200 + i}` }));

describe("movedConversations", () => {
  it("names exactly the conversations whose owner moves to or from this instance", async () => {
    const before = set(3);
    const now = set(4);
    const ids = Array.from({ length: 5_000 }, (_, k) => `g:${k}`);
    const moved = await movedConversations(ids, before, now, "chat-1");
    const expected = ids.filter((id) => {
      const was = ownerOf(id, before)!.id;
      const is = ownerOf(id, now)!.id;
      return was !== is && (was === "chat-1" || is === "chat-1");
    });
    expect([...moved].sort()).toEqual(expected.sort());
    // A join moves keys only to the new instance: chat-1 loses some to chat-3, gains none.
    expect(moved.size).toBeGreaterThan(0);
    for (const id of moved) expect([ownerOf(id, before)!.id, ownerOf(id, now)!.id]).toEqual(["chat-1", "chat-3"]);
    const left = await movedConversations(ids, now, now.filter((i) => i.id !== "chat-3"), "chat-1");
    expect(left.size).toBeGreaterThan(0);
    // When chat-3 leaves, chat-1 takes back some of its keys, and nothing else moves for it.
    for (const id of left) expect(ownerOf(id, now)!.id).toBe("chat-3");
    for (const id of left) expect(ownerOf(id, now.filter((i) => i.id !== "chat-3"))!.id).toBe("chat-1");
  });

  it("gives the event loop a turn while it scores a large cache", async () => {
    const ids = Array.from({ length: 20_000 }, (_, k) => `g:${k}`);
    let turns = 0;
    const ticking = setInterval(() => turns++, 0);
    try {
      await movedConversations(ids, set(4), set(5), "chat-0");
    } finally {
      clearInterval(ticking);
    }
    expect(turns).toBeGreaterThan(0);
  });
});
