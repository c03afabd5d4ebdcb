import { randomUUID } from "node:crypto";
import { createConnection, createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { RedisDirectorySignals } from "../../internal/chat/directory-signals-redis.js";
import type { DirectoryChange } from "../../internal/chat/directory-signals.js";
import { waitFor } from "../support/wait.js";


describe("directory change signals over Redis pub/sub (real Redis)", () => {
  it("reaches every chat instance of the installation, and only those", async () => {
    const prefix = `meshchat-test:${randomUUID()}:`;
    const url = process.env.REDIS_URL!;
    const [a, b, other] = [new RedisDirectorySignals(url, prefix), new RedisDirectorySignals(url, prefix), new RedisDirectorySignals(url, `${prefix}other:`)];
    try {
      await Promise.all([a.ready(), b.ready(), other.ready()]);
      const seen = { a: [] as DirectoryChange[], b: [] as DirectoryChange[], other: [] as DirectoryChange[] };
      a.onChanged((id) => seen.a.push(id));
      b.onChanged((id) => seen.b.push(id));
      other.onChanged((id) => seen.other.push(id));
      const changes: DirectoryChange[] = [
        { kind: "conversation", conversationId: "g:1" },
        { kind: "contacts", userIds: ["u1", "u2"] },
        { kind: "privacy", userId: "u3" },
      ];
      await a.changed(changes[0]!);
      await b.changed(changes[1]!);
      await a.changed(changes[2]!);
      await waitFor("both instances hear every change", () => seen.a.length === 3 && seen.b.length === 3, 10_000);
      expect(seen.a).toEqual(changes);
      expect(seen.b).toEqual(changes);
      expect(seen.other).toEqual([]);
    } finally {
      for (const s of [a, b, other]) await s.close();
    }
  });

  it("delivers a change published right after ready(), however slowly the publisher connects", async () => {
    // ready() used to wait for the subscriber only: a change published before the
    // publisher's own connection was up was dropped (no offline queue), silently.
    // The proxy holds back the first connection (the publisher's) to make that order certain.
    const prefix = `meshchat-test:${randomUUID()}:`;
    const listener = new RedisDirectorySignals(process.env.REDIS_URL!, prefix);
    const proxy = await slowFirstConnectionProxy(new URL(process.env.REDIS_URL!), 500);
    const publisher = new RedisDirectorySignals(`redis://127.0.0.1:${proxy.port}`, prefix);
    try {
      await Promise.all([listener.ready(), publisher.ready()]);
      const seen: DirectoryChange[] = [];
      listener.onChanged((c) => seen.push(c));
      await publisher.changed({ kind: "conversation", conversationId: "g:1" });
      await waitFor("the change arrives", () => seen.length === 1, 10_000);
      expect(seen).toEqual([{ kind: "conversation", conversationId: "g:1" }]);
    } finally {
      for (const s of [listener, publisher]) await s.close();
      await proxy.close();
    }
  });

  it("never fails the caller when Redis cannot be reached", async () => {
    const down = new RedisDirectorySignals("redis://127.0.0.1:1", "x:");
    await expect(down.changed({ kind: "conversation", conversationId: "g:1" })).resolves.toBeUndefined();
    await down.close();
  });
});

/** A TCP proxy to `target` that starts forwarding the first connection it accepts only after `delayMs`. */
async function slowFirstConnectionProxy(target: URL, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((client) => {
    const delay = accepted++ === 0 ? delayMs : 0;
    client.pause();
    sockets.add(client);
    setTimeout(() => {
      const upstream = createConnection(Number(target.port), target.hostname, () => {
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      const end = () => { client.destroy(); upstream.destroy(); };
      upstream.on("error", end).on("close", end);
      client.on("error", end).on("close", end);
    }, delay);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}
