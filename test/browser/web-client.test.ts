import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { AuthSession, refreshTokens } from "../../internal/client/auth.js";
import { authenticate, ChatClient, type ClientError, type SessionTokens } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";
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

/** Two people signed up in two browsers; the first opens their direct conversation. */
async function twoPeople(first: string, second: string) {
  const suffix = Date.now().toString(36);
  const names = [`${first}${suffix}`, `${second}${suffix}`] as const;
  const pages = [await newPage(), await newPage()] as const;
  await signUp(pages[0].page, names[0]);
  await signUp(pages[1].page, names[1]);
  await pages[0].page.getByTestId("direct-username").fill(names[1]);
  await pages[0].page.getByTestId("open-direct").locator("button").click();
  await expect.poll(() => pages[0].page.getByTestId("conversation-title").textContent()).toBe(names[1]);
  return { pages, names };
}

/**
 * Clicks one of a message's actions, which show on hover. A re-render (a receipt arriving)
 * replaces the message under a still mouse, and the browser keeps the new one un-hovered until
 * the mouse moves: hover and click again until the click lands (CI saw the edit button stay
 * hidden for 30 s).
 */
async function messageAction(message: Locator, action: string): Promise<void> {
  await expect.poll(async () => {
    await message.hover();
    return message.getByTestId(action).click({ timeout: 1_000 }).then(() => true, () => false);
  }, { timeout: 30_000 }).toBe(true);
}

describe("the web client served by the edge", () => {
  it("shows who is typing, edits, reply quotes and deletions, and the quote of a deleted message is its tombstone", async () => {
    const { pages: [C, D], names: [cy] } = await twoPeople("cy", "di");
    await say(C.page, "first");
    await D.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(D.page)).toEqual(["first"]);

    // Cy types (no enter yet): Di's header says so; Cy's message ends it.
    await C.page.getByTestId("composer").pressSequentially("sec");
    await expect.poll(() => D.page.getByTestId("typing").textContent()).toBe(`${cy} is typing…`);
    await C.page.getByTestId("composer").fill("second");
    await C.page.getByTestId("send").click();
    await expect.poll(() => texts(D.page)).toEqual(["first", "second"]);
    await expect.poll(() => D.page.getByTestId("typing").textContent()).toBe("");

    // Cy edits her first message from its menu.
    const first = C.page.locator("[data-testid=message]").first();
    C.page.once("dialog", (d) => void d.accept("first, fixed"));
    await messageAction(first, "edit");
    await expect.poll(() => texts(D.page)).toEqual(["first, fixed (edited)", "second"]);

    // Di replies to "second"; Cy sees the quote.
    const second = D.page.locator("[data-testid=message]").nth(1);
    D.page.once("dialog", (d) => void d.accept("re: second"));
    await messageAction(second, "reply");
    await expect.poll(() => C.page.getByTestId("quote").allTextContents()).toEqual(["second"]);

    // Cy deletes "second" for everyone: a tombstone in its place, and in the quote.
    const mine = C.page.locator("[data-testid=message]").nth(1);
    C.page.once("dialog", (d) => void d.accept());
    await messageAction(mine, "delete");
    await expect.poll(() => texts(D.page)).toEqual(["first, fixed (edited)", "This message was deleted", "re: second"]);
    await expect.poll(() => D.page.getByTestId("quote").allTextContents()).toEqual(["This message was deleted"]);
  });

  it("blocks and unblocks from a conversation's header, says why a blocked send is refused, and shows a deleted account as such", async () => {
    const { pages: [E, F], names: [, fi] } = await twoPeople("el", "fi");
    await say(E.page, "hi");
    await F.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(F.page)).toEqual(["hi"]);

    E.page.once("dialog", (d) => void d.accept());
    await E.page.getByTestId("block-toggle").click();
    await expect.poll(() => E.page.getByTestId("block-toggle").textContent()).toBe("Unblock");
    await expect.poll(() => E.page.getByTestId("presence").textContent()).toBe("blocked");
    await say(F.page, "hello?");
    await expect.poll(() => F.page.getByTestId("send-error").textContent()).toBe("This conversation does not take your messages.");
    await E.page.getByTestId("block-toggle").click();
    await expect.poll(() => E.page.getByTestId("block-toggle").textContent()).toBe("Block");
    await say(F.page, "hello again");
    await expect.poll(() => texts(E.page)).toEqual(["hi", "hello again"]);

    // Fi deletes the account (from another client): El's page shows a deleted account, with nothing to block.
    const tokens = await authenticate(c.httpUrl, "login", fi, "correct horse battery");
    const other = new ChatClient({ url: c.wsUrl, token: tokens.token, deviceId: "fi-cli", socket: nodeSocket });
    await other.connect();
    await other.deleteAccount("correct horse battery");
    await other.close();
    await E.page.reload();
    await E.page.getByTestId("conversation").first().click();
    await expect.poll(() => E.page.getByTestId("conversation-title").textContent()).toBe("Deleted account");
    await expect.poll(() => E.page.getByTestId("presence").textContent()).toBe("this account was deleted");
    expect(await E.page.getByTestId("block-toggle").count()).toBe(0);
    // The history is a request of its own after the click: waited for, not read at once.
    await expect.poll(() => texts(E.page)).toEqual(["hi", "hello again"]);
  });

  it("lets two people chat both ways, shows receipts, a second device, offline resync and errors", async () => {
    // Ana opens a chat with Bo by username and writes; Bo sees it appear with an unread count.
    const { pages: [A, B], names: [ana, bo] } = await twoPeople("ana", "bo");
    await say(A.page, "hello Bo");
    await expect.poll(() => B.page.getByTestId("unread").textContent({ timeout: 1000 })).toBe("1");
    await B.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(B.page)).toEqual(["hello Bo"]);
    await say(B.page, "hi Ana!");
    await expect.poll(() => texts(A.page)).toEqual(["hello Bo", "hi Ana!"]);
    // Bo has the conversation open: Ana's message shows as read.
    await expect.poll(() => A.page.locator("[data-testid=message].mine").first().getAttribute("data-state")).toBe("read");
    // Presence: Bo is online for Ana.
    await expect.poll(() => A.page.getByTestId("presence").textContent()).toBe("online");
    // One day separator above today's messages.
    expect(await A.page.getByTestId("day").allTextContents()).toEqual(["Today"]);

    // A second device of Ana's sees the same history.
    const A2 = await newPage();
    await signUp(A2.page, ana, "login");
    await A2.page.getByTestId("conversation").first().click();
    await expect.poll(() => texts(A2.page)).toEqual(["hello Bo", "hi Ana!"]);

    // Bo goes offline; Ana writes twice; Bo comes back and the page resyncs by itself.
    await B.ctx.setOffline(true);
    await say(A.page, "are you there?");
    await say(A.page, "ping");
    await B.ctx.setOffline(false);
    await expect.poll(() => texts(B.page)).toEqual(["hello Bo", "hi Ana!", "are you there?", "ping"]);

    // Errors are shown in words, next to what caused them, and go away when they no longer apply.
    await A.page.getByTestId("composer").fill("x".repeat(100_001));
    await A.page.getByTestId("send").click();
    await expect.poll(() => A.page.getByTestId("send-error").getAttribute("data-code")).toBe("MESSAGE_TOO_LONG");
    expect(await A.page.getByTestId("send-error").textContent()).toBe("This message is too long: 100,001 characters, and the limit is 100,000.");
    await A.page.getByTestId("composer").fill("short again");
    expect(await A.page.getByTestId("send-error").isHidden()).toBe(true);

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
          errors: [...document.querySelectorAll("[role=alert]:not([hidden])")].map((e) => e.textContent),
          connection: document.getElementById("connection")?.hidden === false ? document.getElementById("connection").textContent : null,
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
    await expect.poll(() => h.page.locator("[data-title=trip]").count()).toBe(1);
    await h.page.locator("[data-title=trip]").click();
    // Gina types the next member's name; a message arrives and re-renders her page meanwhile:
    // what she typed must survive (it once did not, and the add went out empty).
    await g.page.getByTestId("add-member").fill(names[2]!);
    await say(h.page, "hi");
    await expect.poll(() => texts(g.page)).toEqual(["hi"]);
    expect(await g.page.getByTestId("add-member").inputValue()).toBe(names[2]!);
    // And it keeps the focus: moved out of the page and back it lost it, and the Enter below
    // went nowhere when a re-render came between typing and pressing it.
    expect(await g.page.evaluate(`document.activeElement?.getAttribute("data-testid")`)).toBe("add-member");
    await g.page.getByTestId("add-member").press("Enter");
    await expect.poll(() => g.page.getByTestId("add-member").inputValue()).toBe("");
    await say(g.page, "welcome both");
    for (const p of [h, i]) {
      await expect.poll(() => p.page.locator("[data-title=trip]").count()).toBe(1);
      await p.page.locator("[data-title=trip]").click();
      await expect.poll(() => texts(p.page)).toEqual(["hi", "welcome both"]);
    }
  });
});

/** Every alert that is showing on the page. */
const alerts = (page: Page) => page.locator("[role=alert]:not([hidden])").allTextContents();
const width = async (page: Page, testId: string) => (await page.getByTestId(testId).boundingBox())?.width ?? 0;

async function openDirect(page: Page, username: string): Promise<void> {
  await page.getByTestId("direct-username").fill(username);
  await page.getByTestId("direct-username").press("Enter");
  await expect.poll(() => page.getByTestId("conversation-title").textContent()).toBe(username);
}

describe("sessions in the page", () => {
  it("keeps a refresh token across a reload; Log out ends the session on the server; a password change elsewhere signs the page out", async () => {
    const name = `ses${Date.now().toString(36)}`;
    const stored = async (page: Page) => JSON.parse((await page.evaluate(() => localStorage.getItem("meshchat.tokens"))) ?? "null") as SessionTokens | null;
    const refused = (t: SessionTokens) => refreshTokens(c.httpUrl, t.refreshToken).then(() => undefined, (e: ClientError) => e.code);
    const A = await newPage();
    await signUp(A.page, name);
    const first = (await stored(A.page))!;
    expect(first.refreshToken).toBeTruthy();
    await A.page.reload();
    await expect.poll(() => A.page.getByTestId("me").textContent()).toBe(name);
    // Log out: the page forgets the tokens, and the server will not take them any more.
    await A.page.getByTestId("logout").click();
    await expect.poll(() => A.page.getByTestId("login").count()).toBe(1);
    expect(await stored(A.page)).toBeNull();
    expect(await refused(first)).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    expect(await A.page.getByTestId("auth-error").isHidden()).toBe(true);
    // Logged in again, the page is signed out when the password is changed from another device.
    await signUp(A.page, name, "login");
    const other = new AuthSession(c.httpUrl, await authenticate(c.httpUrl, "login", name, "correct horse battery", "cli"));
    expect(await other.changePassword("correct horse battery", "another good password")).toBe(1);
    await expect.poll(() => A.page.getByTestId("auth-error").getAttribute("data-code"), { timeout: 30_000 }).toBe("SESSION_ENDED");
    expect(await stored(A.page)).toBeNull();
  });
});

describe("a page people keep open all day", () => {
  it("says what went wrong in words, next to the cause, and clears it; refuses a chat with oneself", async () => {
    const suffix = Date.now().toString(36);
    const [kim, lee] = [`kim${suffix}`, `lee${suffix}`];
    const L = await newPage();
    await signUp(L.page, lee);
    const K = await newPage();
    // A wrong password: a sentence, not a code.
    await K.page.getByTestId("username").fill(lee);
    await K.page.getByTestId("password").fill("not the password");
    await K.page.getByTestId("login").click();
    await expect.poll(() => K.page.getByTestId("auth-error").textContent()).toBe("Wrong username or password.");
    await K.page.getByTestId("username").fill("");
    expect(await alerts(K.page)).toEqual([]);
    await signUp(K.page, kim);
    // Unknown user: said under the box, gone once the user types again.
    await K.page.getByTestId("direct-username").fill(`nobody${suffix}`);
    await K.page.getByTestId("direct-username").press("Enter");
    await expect.poll(() => K.page.getByTestId("direct-error").textContent()).toBe(`Nobody is called “nobody${suffix}”. Check the spelling.`);
    expect(await K.page.getByTestId("direct-error").getAttribute("data-code")).toBe("NOT_FOUND");
    // Oneself: refused before anything is created.
    await K.page.getByTestId("direct-username").fill(kim);
    expect(await alerts(K.page)).toEqual([]);
    await K.page.getByTestId("direct-username").press("Enter");
    await expect.poll(() => K.page.getByTestId("direct-error").textContent()).toContain("That is you");
    expect(await K.page.getByTestId("conversation").count()).toBe(0);
    // A successful chat afterwards leaves no error showing anywhere.
    await openDirect(K.page, lee);
    await say(K.page, "hello lee");
    await expect.poll(() => texts(K.page)).toEqual(["hello lee"]);
    expect(await alerts(K.page)).toEqual([]);
    expect(await K.page.getByTestId("load-older").count()).toBe(0);
  });

  it("fits a phone, a tablet and a desktop: list or conversation below the breakpoint, with a way back", async () => {
    const suffix = Date.now().toString(36);
    const [max, nia] = [`max${suffix}`, `nia${suffix}`];
    const N = await newPage();
    await signUp(N.page, nia);
    const M = await newPage();
    await signUp(M.page, max);
    // The login card does not scroll, on a phone either.
    for (const size of [{ width: 1280, height: 800 }, { width: 360, height: 640 }]) {
      const P = await newPage();
      await P.page.setViewportSize(size);
      expect(await P.page.evaluate("document.scrollingElement.scrollHeight <= window.innerHeight && document.getElementById('app').scrollHeight <= document.getElementById('app').clientHeight")).toBe(true);
    }
    await openDirect(M.page, nia);
    await say(M.page, "a longish message to see how the bubble wraps on a narrow screen, with words kept whole");
    fs.mkdirSync(OUTPUT, { recursive: true });
    for (const w of [360, 768, 1280]) {
      await M.page.setViewportSize({ width: w, height: 720 });
      if (await M.page.getByTestId("conversations").isVisible()) await M.page.getByTestId("conversation").first().click();
      await expect.poll(() => M.page.getByTestId("composer").isVisible()).toBe(true);
      expect(await width(M.page, "composer")).toBeGreaterThanOrEqual(240);
      // Nothing sticks out sideways.
      expect(await M.page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")).toBe(true);
      await M.page.screenshot({ path: path.join(OUTPUT, `conversation-${w}.png`) });
      if (w === 360) {
        expect(await M.page.getByTestId("conversations").isVisible()).toBe(false);
        await M.page.getByTestId("back").click();
        await expect.poll(() => M.page.getByTestId("conversations").isVisible()).toBe(true);
        expect(await M.page.getByTestId("composer").isVisible()).toBe(false);
        await M.page.screenshot({ path: path.join(OUTPUT, `list-${w}.png`) });
        // Escape goes back too.
        await M.page.getByTestId("conversation").first().click();
        await M.page.getByTestId("composer").press("Escape");
        await expect.poll(() => M.page.getByTestId("conversations").isVisible()).toBe(true);
      } else {
        expect(await M.page.getByTestId("conversations").isVisible()).toBe(true);
        expect(await M.page.getByTestId("back").isVisible()).toBe(false);
      }
    }
    // Nia leaves: her last-seen time is relative.
    await N.ctx.close();
    await expect.poll(() => M.page.getByTestId("presence").textContent()).toMatch(/^last seen (just now|\d+ min ago)$/);
  });

  it("tells two groups of one name apart, orders by last activity across a reload, and counts unread in the tab title", async () => {
    const suffix = Date.now().toString(36);
    const [ola, pat, quinn] = [`ola${suffix}`, `pat${suffix}`, `quinn${suffix}`];
    for (const n of [pat, quinn]) await signUp((await newPage()).page, n);
    const O = await newPage();
    await signUp(O.page, ola);
    for (const member of [pat, quinn]) {
      await O.page.getByText("New group").click();
      await O.page.getByTestId("group-title").fill("book club");
      await O.page.getByTestId("group-members").fill(member);
      await O.page.getByTestId("group-members").press("Enter");
      await expect.poll(() => O.page.locator("[data-title='book club']").count()).toBe(member === pat ? 1 : 2);
    }
    const members = await O.page.getByTestId("members").allTextContents();
    expect(members.sort()).toEqual([`you, ${pat}`, `you, ${quinn}`]);
    // The first group gets a message: it moves to the top, and stays there after a reload.
    const firstGroup = O.page.locator("[data-title='book club']", { hasText: pat });
    await firstGroup.click();
    await say(O.page, "first group");
    await expect.poll(() => O.page.getByTestId("members").first().textContent()).toBe(`you, ${pat}`);
    await O.page.reload();
    await expect.poll(() => O.page.getByTestId("members").allTextContents()).toEqual([`you, ${pat}`, `you, ${quinn}`]);
    await expect.poll(() => O.page.getByTestId("preview").first().textContent()).toBe("first group");

    // Unread messages in a conversation that is not open show in the tab title.
    const R = await newPage();
    await signUp(R.page, `rae${suffix}`);
    await openDirect(R.page, ola);
    await say(R.page, "one");
    await say(R.page, "two");
    await expect.poll(() => O.page.title()).toBe("(2) meshchat");
    await O.page.locator(`[data-title=rae${suffix}]`).click();
    await expect.poll(() => O.page.title()).toBe("meshchat");
  });

  it("shows when it is reconnecting and when it is back, notifies while hidden, and sends on Enter with Shift+Enter for a new line", async () => {
    const suffix = Date.now().toString(36);
    const [sam, tia] = [`sam${suffix}`, `tia${suffix}`];
    const T = await newPage();
    // The tab is hidden and notifications are allowed: record what the page shows.
    await T.page.addInitScript(`
      window.__shown = [];
      window.__hidden = false;
      Object.defineProperty(document, "visibilityState", { get: () => (window.__hidden ? "hidden" : "visible") });
      window.Notification = class { static permission = "granted"; static requestPermission() { return Promise.resolve("granted"); }
        constructor(title, opts) { window.__shown.push({ title, body: opts.body }); } close() {} };
    `);
    await T.page.reload();
    await signUp(T.page, tia);
    const S = await newPage();
    await signUp(S.page, sam);
    await openDirect(S.page, tia);
    await S.page.getByTestId("composer").fill("first line");
    await S.page.getByTestId("composer").press("Shift+Enter");
    await S.page.getByTestId("composer").pressSequentially("second line");
    await S.page.getByTestId("composer").press("Enter");
    await expect.poll(() => texts(S.page)).toEqual(["first line\nsecond line"]);
    await expect.poll(() => T.page.getByTestId("conversation").count()).toBe(1);
    await T.page.evaluate("window.__hidden = true");
    await say(S.page, "are you there?");
    await expect.poll(() => T.page.evaluate("window.__shown")).toEqual([{ title: sam, body: "are you there?" }]);

    await S.ctx.setOffline(true);
    await expect.poll(() => S.page.getByTestId("connection").textContent(), { timeout: 30_000 }).toContain("Reconnecting");
    await S.ctx.setOffline(false);
    await expect.poll(() => S.page.getByTestId("connection").textContent(), { timeout: 30_000 }).toBe("Back online.");

    // Every control can be named by a screen reader.
    const unnamed = await S.page.evaluate(`[...document.querySelectorAll("input, textarea, button")].filter((e) =>
      !(e.getAttribute("aria-label") || e.textContent.trim() || (e.id && document.querySelector("label[for=" + e.id + "]")))).map((e) => e.outerHTML)`);
    expect(unnamed).toEqual([]);
  });

  it("keeps a 100,000-character message readable: collapsed, with Show more", async () => {
    const suffix = Date.now().toString(36);
    const [uma, vic] = [`uma${suffix}`, `vic${suffix}`];
    const V = await newPage();
    await signUp(V.page, vic);
    const U = await newPage();
    await signUp(U.page, uma);
    await openDirect(U.page, vic);
    const long = "lorem ipsum dolor sit amet ".repeat(3_704).slice(0, 100_000);
    await say(U.page, long);
    await V.page.getByTestId("conversation").first().click();
    await expect.poll(() => V.page.getByTestId("show-more").count()).toBe(1);
    // The list re-renders as presence and receipts arrive: measure the bubble as it is now.
    const height = async () => (await V.page.locator("[data-testid=message] .text").boundingBox().catch(() => null))?.height ?? 0;
    await expect.poll(height).toBeGreaterThan(0);
    const collapsed = await height();
    expect(collapsed).toBeLessThan(400);
    await V.page.getByTestId("show-more").click();
    await expect.poll(() => V.page.getByTestId("show-more").textContent()).toBe("Show less");
    await expect.poll(height).toBeGreaterThan(collapsed * 5);
    expect((await V.page.locator("[data-testid=message] .text").textContent())!.length).toBe(100_000);
  });
});
