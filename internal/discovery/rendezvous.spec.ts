import { describe, expect, it } from "vitest";
import { ownerOf } from "./rendezvous.js";

const set = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `chat-${i}`, address: `127.0.0.1:${7200 + i}` }));

describe("rendezvous ownership", () => {
  it("is the same whatever the order of the live set", () => {
    const a = set(5);
    const b = [...a].reverse();
    for (let k = 0; k < 200; k++) expect(ownerOf(`c${k}`, a)!.id).toBe(ownerOf(`c${k}`, b)!.id);
  });

  it("spreads keys over instances and moves only the keys of one that leaves", () => {
    const all = set(4);
    const keys = Array.from({ length: 4000 }, (_, k) => `g:${k}`);
    const before = new Map(keys.map((k) => [k, ownerOf(k, all)!.id]));
    const counts = new Map<string, number>();
    for (const o of before.values()) counts.set(o, (counts.get(o) ?? 0) + 1);
    for (const i of all) expect(counts.get(i.id)!).toBeGreaterThan(800);
    const rest = all.filter((i) => i.id !== "chat-2");
    for (const k of keys) {
      const now = ownerOf(k, rest)!.id;
      if (before.get(k) !== "chat-2") expect(now).toBe(before.get(k));
      else expect(now).not.toBe("chat-2");
    }
  });

  it("has no owner when nothing is live", () => {
    expect(ownerOf("x", [])).toBeUndefined();
  });
});
