import { describe, expect, it } from "vitest";
import { MemberSets } from "./member-sets.js";

/** A directory whose reads the test answers by hand, counting them. */
function directory() {
  const members = new Map<string, string[]>([["c", ["a", "b"]]]);
  const waiting: Array<{ conv: string; answer: () => void }> = [];
  let reads = 0;
  let held = false;
  const load = (conv: string) => {
    reads++;
    const now = [...(members.get(conv) ?? [])];
    if (!held) return Promise.resolve(now);
    return new Promise<string[]>((resolve) => waiting.push({ conv, answer: () => resolve(now) }));
  };
  return { members, load, reads: () => reads, hold: (on: boolean) => { held = on; }, answerAll: () => { for (const w of waiting.splice(0)) w.answer(); } };
}

describe("MemberSets", () => {
  it("reads a conversation's members once, then answers from memory until its entry is older than the TTL", async () => {
    const dir = directory();
    let now = 0;
    const sets = new MemberSets(dir.load, 10, 60_000, () => now);
    expect(await Promise.all([sets.has("c", "a"), sets.has("c", "b"), sets.has("c", "z")])).toEqual([true, true, false]);
    expect(dir.reads()).toBe(1);
    now = 59_999;
    expect(await sets.has("c", "a")).toBe(true);
    expect(dir.reads()).toBe(1);
    dir.members.set("c", ["b"]);
    now = 60_000;
    expect(await sets.has("c", "a")).toBe(false);
    expect(dir.reads()).toBe(2);
  });

  it("a change this process commits is seen by the next check, even past a read that began before it", async () => {
    const dir = directory();
    const sets = new MemberSets(dir.load);
    expect(await sets.has("c", "x")).toBe(false);
    // A check whose read is still out when the change commits…
    dir.hold(true);
    sets.changed("c");
    const before = sets.has("c", "x");
    dir.members.set("c", ["a", "b", "x"]);
    sets.changed("c");
    // …does not hide the change from a check made after it, nor leave its old answer in memory.
    const after = sets.has("c", "x");
    dir.answerAll();
    expect(await before).toBe(false);
    expect(await after).toBe(true);
    dir.hold(false);
    expect(await sets.has("c", "x")).toBe(true);
  });

  it("keeps at most its bound of conversations, dropping the least recently read", async () => {
    const dir = directory();
    for (let i = 0; i < 8; i++) dir.members.set(`c${i}`, ["a"]);
    const sets = new MemberSets(dir.load, 4);
    for (let i = 0; i < 8; i++) await sets.has(`c${i}`, "a");
    const reads = dir.reads();
    await sets.has("c7", "a");
    expect(dir.reads()).toBe(reads);
    await sets.has("c0", "a");
    expect(dir.reads()).toBe(reads + 1);
  });
});
