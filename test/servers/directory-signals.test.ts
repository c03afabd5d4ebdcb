import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RedisDirectorySignals } from "../../internal/chat/directory-signals-redis.js";
import { waitFor } from "../support/wait.js";


describe("directory change signals over Redis pub/sub (real Redis)", () => {
  it("reaches every chat instance of the installation, and only those", async () => {
    const prefix = `meshchat-test:${randomUUID()}:`;
    const url = process.env.REDIS_URL!;
    const [a, b, other] = [new RedisDirectorySignals(url, prefix), new RedisDirectorySignals(url, prefix), new RedisDirectorySignals(url, `${prefix}other:`)];
    await Promise.all([a.ready(), b.ready(), other.ready()]);
    const seen = { a: [] as string[], b: [] as string[], other: [] as string[] };
    a.onChanged((id) => seen.a.push(id));
    b.onChanged((id) => seen.b.push(id));
    other.onChanged((id) => seen.other.push(id));
    await a.changed("g:1");
    await b.changed("g:2");
    await waitFor("both instances hear both changes", () => seen.a.length === 2 && seen.b.length === 2);
    expect(seen.a).toEqual(["g:1", "g:2"]);
    expect(seen.b).toEqual(["g:1", "g:2"]);
    expect(seen.other).toEqual([]);
    for (const s of [a, b, other]) await s.close();
  });

  it("never fails the caller when Redis cannot be reached", async () => {
    const down = new RedisDirectorySignals("redis://127.0.0.1:1", "x:");
    await expect(down.changed("g:1")).resolves.toBeUndefined();
    await down.close();
  });
});
