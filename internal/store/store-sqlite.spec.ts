import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { storeContract } from "../../test/support/store-contract.js";
import { SqliteStore } from "./store-sqlite.js";
import type { Store } from "./store.js";

// The embedded default's store on a throwaway file (a second owner opens the same file).
let dir = "";
const opened: Store[] = [];
storeContract({
  name: "SQLite (embedded)",
  async setup() { dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-sqlite-")); },
  async open() { const s = SqliteStore.open(path.join(dir, "store.db")); opened.push(s); return s; },
  async teardown() { for (const s of opened.splice(0)) await s.close(); fs.rmSync(dir, { recursive: true, force: true }); },
});
