import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { startCluster, warnOnFailure, type TestCluster } from "../e2e/harness.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const OUTPUT = path.join(import.meta.dirname, "output");

let c: TestCluster;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  c = await startCluster({ WEB_ROOT: path.join(ROOT, "web", "dist"), HEARTBEAT_INTERVAL_MS: "1000", HEAD_CHECK_INTERVAL_MS: "3000" });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
});
afterAll(async () => {
  for (const ctx of contexts) await ctx.close().catch(() => {});
  await browser?.close();
  await c?.stop();
});

/** What each page logged, for the report of a failing test. */
const consoles = new Map<Page, string[]>();

async function newPage(): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(ctx);
  const page = await ctx.newPage();
  const lines: string[] = [];
  consoles.set(page, lines);
  const keep = (l: string) => { lines.push(`${new Date().toISOString()} ${l}`); if (lines.length > 50) lines.shift(); };
  page.on("console", (m) => keep(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => keep(`pageerror: ${e.message}`));
  page.on("websocket", (ws) => { keep(`ws open ${ws.url()}`); ws.on("close", () => keep("ws closed")); });
  await page.goto(c.httpUrl + "/");
  return { ctx, page };
}

async function signUp(page: Page, username: string, kind: "signup" | "login" = "signup"): Promise<void> {
  await page.getByTestId("username").fill(username);
  await page.getByTestId("password").fill("correct horse battery");
  await page.getByTestId(kind).click();
  await expect.poll(() => page.getByTestId("me").textContent()).toBe(username);
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByTestId("composer").fill(text);
  await page.getByTestId("send").click();
}

const texts = (page: Page) => page.locator("[data-testid=message] .text").allTextContents();

describe("the web client served by the edge", () => {
  it("lets two people chat both ways, shows receipts, a second device, offline resync and errors", async () => {
    const suffix = Date.now().toString(36);
    const [ana, bo] = [`ana${suffix}`, `bo${suffix}`];
    const A = await newPage();
    const B = await newPage();
    await signUp(A.page, ana);
    await signUp(B.page, bo);

    // Ana opens a chat with Bo by username and writes; Bo sees it appear with an unread count.
    await A.page.getByTestId("direct-username").fill(bo);
    await A.page.getByTestId("open-direct").locator("button").click();
    await expect.poll(() => A.page.getByTestId("conversation-title").textContent()).toBe(bo);
    await say(A.page, "hello Bo");
    await expect.poll(() => B.page.getByTestId("unread").textContent({ timeout: 1000 }), { timeout: 10_000 }).toBe("1");
    await B.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(B.page), { timeout: 10_000 }).toEqual(["hello Bo"]);
    await say(B.page, "hi Ana!");
    await expect.poll(() => texts(A.page), { timeout: 10_000 }).toEqual(["hello Bo", "hi Ana!"]);
    // Bo has the conversation open: Ana's message shows as read.
    await expect.poll(() => A.page.locator("[data-testid=message].mine").first().getAttribute("data-state"), { timeout: 10_000 }).toBe("read");
    // Presence: Bo is online for Ana.
    await expect.poll(() => A.page.getByTestId("presence").textContent(), { timeout: 10_000 }).toBe("online");

    // A second device of Ana's sees the same history.
    const A2 = await newPage();
    await signUp(A2.page, ana, "login");
    await A2.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(A2.page), { timeout: 10_000 }).toEqual(["hello Bo", "hi Ana!"]);

    // Bo goes offline; Ana writes twice; Bo comes back and the page resyncs by itself.
    await B.ctx.setOffline(true);
    await say(A.page, "are you there?");
    await say(A.page, "ping");
    await B.ctx.setOffline(false);
    await expect.poll(() => texts(B.page), { timeout: 20_000 }).toEqual(["hello Bo", "hi Ana!", "are you there?", "ping"]);

    // Errors are shown plainly.
    await A.page.getByTestId("composer").fill("x".repeat(100_001));
    await A.page.getByTestId("send").click();
    await expect.poll(() => A.page.getByTestId("error").textContent(), { timeout: 10_000 }).toContain("MESSAGE_TOO_LONG");

    fs.mkdirSync(OUTPUT, { recursive: true });
    await A.page.getByTestId("composer").fill("");
    await A.page.screenshot({ path: path.join(OUTPUT, "chat.png") });
    expect(fs.statSync(path.join(OUTPUT, "chat.png")).size).toBeGreaterThan(10_000);
  });

  it("creates a group and adds members from the page", async () => {
    warnOnFailure(() => c);
    // On failure: what every page showed (conversations, banners) and logged.
    onTestFailed(async () => {
      for (const [page, lines] of consoles) {
        // A string, evaluated in the page (this file is not compiled with the DOM types).
        const state = await page.evaluate(`({
          me: document.querySelector("[data-testid=me]")?.textContent,
          titles: [...document.querySelectorAll("[data-title]")].map((e) => e.getAttribute("data-title")),
          error: document.querySelector("[data-testid=error]")?.hidden === false ? document.querySelector("[data-testid=error]").textContent : null,
          reconnecting: document.getElementById("reconnecting")?.hidden === false,
        })`).catch((e: Error) => ({ failed: e.message }));
        process.stderr.write(`--- page ${JSON.stringify(state)}\n${lines.join("\n")}\n`);
      }
    });
    const suffix = Date.now().toString(36);
    const names = [`gina${suffix}`, `hal${suffix}`, `ivy${suffix}`];
    const pages: Array<{ page: Page }> = [];
    for (const n of names) {
      const p = await newPage();
      await signUp(p.page, n);
      pages.push(p);
    }
    const [g, h, i] = pages as [{ page: Page }, { page: Page }, { page: Page }];
    await g.page.getByText("New group").click();
    await g.page.getByTestId("group-title").fill("trip");
    await g.page.getByTestId("group-members").fill(names[1]!);
    await g.page.getByTestId("create-group").locator("button").click();
    await expect.poll(() => g.page.getByTestId("conversation-title").textContent()).toBe("trip");
    await expect.poll(() => h.page.locator("[data-title=trip]").count(), { timeout: 20_000 }).toBe(1);
    await h.page.locator("[data-title=trip]").click();
    // Gina types the next member's name; a message arrives and re-renders her page meanwhile:
    // what she typed must survive (it once did not, and the add went out empty).
    await g.page.getByTestId("add-member").fill(names[2]!);
    await say(h.page, "hi");
    await expect.poll(() => texts(g.page), { timeout: 10_000 }).toEqual(["hi"]);
    expect(await g.page.getByTestId("add-member").inputValue()).toBe(names[2]!);
    await g.page.getByTestId("add-member").press("Enter");
    await expect.poll(() => g.page.getByTestId("add-member").inputValue(), { timeout: 10_000 }).toBe("");
    await say(g.page, "welcome both");
    for (const p of [h, i]) {
      await expect.poll(() => p.page.locator("[data-title=trip]").count(), { timeout: 20_000 }).toBe(1);
      await p.page.locator("[data-title=trip]").click();
      await expect.poll(() => texts(p.page), { timeout: 10_000 }).toEqual(["hi", "welcome both"]);
    }
  });
});
