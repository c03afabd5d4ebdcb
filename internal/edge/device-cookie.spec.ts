import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DeviceCookies } from "./device-cookie.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "device-cookie-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("DeviceCookies", () => {
  const file = path.join(dir, "keys", "k");
  const cookies = DeviceCookies.load(file, 90, true);
  const header = (setCookie: string) => setCookie.split(";")[0]!;

  it("knows a device it issued a cookie to, for that account only, until it expires", () => {
    const t = 1_700_000_000_000;
    const c = cookies.issue("alice", t);
    expect(c).toMatch(/^meshchat_device_alice=\d+\.[\w-]+; Path=\/v1\/login; Max-Age=7776000; HttpOnly; SameSite=Strict; Secure$/);
    expect(cookies.knows(`other=1; ${header(c)}`, "alice", t + 1_000)).toBe(true);
    expect(cookies.knows(header(c).replace("alice", "bob"), "bob", t)).toBe(false);
    expect(cookies.knows(header(c), "alice", t + 91 * 86_400_000)).toBe(false);
  });

  it("refuses forged or tampered values, and cookies made with another key", () => {
    const t = 1_700_000_000_000;
    const c = header(cookies.issue("alice", t));
    expect(cookies.knows(c.replace(`=${t}.`, `=${t + 1}.`), "alice", t)).toBe(false);
    expect(cookies.knows("meshchat_device_alice=1.abc", "alice", t)).toBe(false);
    expect(cookies.knows(undefined, "alice", t)).toBe(false);
    const other = DeviceCookies.load(path.join(dir, "other"), 90, false);
    expect(other.knows(c, "alice", t)).toBe(false);
    // The same file gives the same key (every edge of an installation shares it).
    expect(DeviceCookies.load(file, 90, true).knows(c, "alice", t)).toBe(true);
  });
});
