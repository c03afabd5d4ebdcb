import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { FileTokenStore } from "./token-store-file.js";
import { MemoryTokenStore } from "./token-store-memory.js";
import { PostgresTokenStore } from "./token-store-postgres.js";
import { tokenStoreBehaviour } from "../../test/support/token-store-contract.js";

describe("MemoryTokenStore", () => {
  tokenStoreBehaviour(async () => ({ store: new MemoryTokenStore() }));
});

function tempFile(): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-tokens-"));
  return { dir, file: path.join(dir, "notifier", "tokens.json") };
}

describe("FileTokenStore", () => {
  tokenStoreBehaviour(async () => {
    const { dir, file } = tempFile();
    let store = FileTokenStore.open(file);
    return {
      store,
      reopen: async () => {
        await store.close();
        store = FileTokenStore.open(file);
        return store;
      },
      cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  });

  it("writes atomically: a complete JSON file, private, no temporary file left", async () => {
    const { dir, file } = tempFile();
    try {
      const store = FileTokenStore.open(file);
      await Promise.all(Array.from({ length: 25 }, (_, i) => store.register("bob", `d${i}`, "fcm", `t${i}`)));
      expect(Object.keys(JSON.parse(fs.readFileSync(file, "utf8")).bob)).toHaveLength(25);
      expect(fs.readdirSync(path.dirname(file))).toEqual(["tokens.json"]);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      await store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("ignores a temporary file left by a crash mid-write, and refuses a corrupt file at start-up", async () => {
    const { dir, file } = tempFile();
    try {
      const store = FileTokenStore.open(file);
      await store.register("bob", "phone", "apns", "apns-1");
      await store.close();
      // A crash between writing the temporary file and the rename.
      fs.writeFileSync(`${file}.12345.7.tmp`, '{"bob":{"phone":{"provider":"ap');
      const again = FileTokenStore.open(file);
      expect(await again.listForUser("bob")).toEqual([{ deviceId: "phone", provider: "apns", token: "apns-1" }]);
      expect(fs.readdirSync(path.dirname(file))).toEqual(["tokens.json"]);
      await again.close();

      fs.writeFileSync(file, '{"bob": ');
      expect(() => FileTokenStore.open(file)).toThrow(/not valid JSON/);
      fs.writeFileSync(file, '{"bob": {"phone": {"provider": "gcm", "token": "x"}}}');
      expect(() => FileTokenStore.open(file)).toThrow(/bad entry/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a failed write fails that change, and the next change writes everything", async () => {
    const { dir, file } = tempFile();
    try {
      const store = FileTokenStore.open(file);
      await store.register("bob", "phone", "apns", "a");
      // Something in the way of the rename (works as root too, unlike a read-only directory).
      fs.rmSync(file);
      fs.mkdirSync(path.join(file, "in-the-way"), { recursive: true });
      await expect(store.register("bob", "tablet", "fcm", "b")).rejects.toThrow();
      fs.rmSync(file, { recursive: true });
      await store.register("carol", "laptop", "webhook", "c");
      await store.close();
      const again = FileTokenStore.open(file);
      expect(await again.listForUser("bob")).toHaveLength(2);
      expect(await again.listForUser("carol")).toHaveLength(1);
      expect(fs.readdirSync(path.dirname(file))).toEqual(["tokens.json"]);
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const POSTGRES_URL = process.env.POSTGRES_URL;

describe.skipIf(!POSTGRES_URL)(POSTGRES_URL ? "PostgresTokenStore (POSTGRES_URL)" : "PostgresTokenStore — SKIPPED: set POSTGRES_URL to run it against a real server", () => {
  tokenStoreBehaviour(async () => {
    // A table of its own per test, dropped afterwards: other suites' data is never touched.
    const table = `push_tokens_test_${randomBytes(6).toString("hex")}`;
    let store = await PostgresTokenStore.open(POSTGRES_URL!, { table });
    return {
      store,
      reopen: async () => {
        await store.close();
        store = await PostgresTokenStore.open(POSTGRES_URL!, { table });
        return store;
      },
      cleanup: async () => {
        const c = new pg.Client({ connectionString: POSTGRES_URL });
        await c.connect();
        try {
          await c.query(`DROP TABLE IF EXISTS ${table}`);
        } finally {
          await c.end();
        }
      },
    };
  });

  it("instances starting together migrate once without racing", async () => {
    const table = `push_tokens_test_${randomBytes(6).toString("hex")}`;
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresTokenStore.open(POSTGRES_URL!, { table })));
    await stores[0]!.register("bob", "phone", "apns", "a");
    expect(await stores[3]!.listForUser("bob")).toHaveLength(1);
    for (const s of stores) await s.close();
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.end();
  });
});
