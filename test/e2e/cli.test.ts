import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, waitFor, type TestCluster } from "./harness.js";

const CHATCTL = path.resolve(import.meta.dirname, "../../dist/cmd/chatctl/main.js");
let c: TestCluster;
let home: string;
const tails: ChildProcess[] = [];
beforeAll(async () => {
  c = await startCluster();
  home = fs.mkdtempSync(path.join(os.tmpdir(), "chatctl-"));
});
afterAll(async () => {
  for (const t of tails) if (t.exitCode === null && t.signalCode === null) { t.kill("SIGKILL"); await new Promise((r) => t.once("exit", r)); }
  await c?.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

/** A terminal: chatctl with this environment (CHATCTL_USER picks who it acts as). */
function terminal(user?: string) {
  const env = { ...process.env, CHATCTL_HOME: home, CHATCTL_SERVER: c.httpUrl, CHATCTL_PASSWORD: "correct horse battery", ...(user ? { CHATCTL_USER: user } : {}) };
  return {
    run(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
      return new Promise((resolve) => {
        const p = spawn(process.execPath, [CHATCTL, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        p.stdout.on("data", (d: Buffer) => { out += d.toString(); });
        p.stderr.on("data", (d: Buffer) => { err += d.toString(); });
        p.once("exit", (code) => resolve({ code, out, err }));
      });
    },
    tail(...args: string[]) {
      const p = spawn(process.execPath, [CHATCTL, "tail", ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
      tails.push(p);
      let out = "";
      let err = "";
      p.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
      p.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
      const exited = new Promise((r) => p.once("exit", r));
      return {
        out: () => out,
        err: () => err,
        ready: () => waitFor("the tail running", () => err.includes("-- tailing as"), { seen: () => out + err }),
        /** Types into the tail (a line is sent as a message). */
        type: (text: string) => p.stdin!.write(text),
        stop: async () => { p.kill("SIGTERM"); await exited; },
      };
    },
  };
}

const suffix = Math.random().toString(36).slice(2, 7);
const [alice, bob, carol] = [`alice${suffix}`, `bob${suffix}`, `carol${suffix}`];

describe("chatctl, as the README walks through it", () => {
  it("two terminals, two users: each acts as its own, one-shot commands run beside a tail, and tail resumes exactly where it left off", async () => {
    const t1 = terminal(alice);
    const t2 = terminal(bob);
    const t3 = terminal(carol);
    expect((await t1.run("signup", alice)).code).toBe(0);
    expect((await t2.run("signup", bob)).code).toBe(0);
    expect((await t3.run("signup", carol)).code).toBe(0);
    // Terminal 1 still acts as alice, though bob and carol signed up after her.
    const tail = t1.tail(`@${bob}`);
    await tail.ready();
    expect(tail.err()).toContain(`tailing as ${alice}`);
    // One-shot commands of the same user while the tail runs.
    expect((await t1.run("list")).code).toBe(0);
    expect((await t2.run("send", `@${alice}`, "hello alice")).out).toMatch(/sent #1/);
    await waitFor("bob's line in alice's tail", () => tail.out().includes("hello alice"), { seen: tail.out });
    // A message in another conversation is shown too, marked with where it belongs.
    await t3.run("send", `@${alice}`, "psst from carol");
    await waitFor("carol's line, marked", () => tail.out().includes("psst from carol"), { seen: tail.out });
    expect(tail.out()).toMatch(new RegExp(`psst from carol.*\\(@${carol}\\)`));
    await tail.stop();

    // While alice is away: two messages. The plain tail prints them once each, in order.
    await t2.run("send", `@${alice}`, "while away 1");
    await t2.run("send", `@${alice}`, "while away 2");
    const again = t1.tail();
    await waitFor("the missed messages", () => again.out().includes("while away 2"), { seen: again.out });
    expect(again.out().match(/while away \d/g)).toEqual(["while away 1", "while away 2"]);
    expect(again.out()).not.toContain("hello alice");
    await again.stop();
    // And once shown, never again.
    await t2.run("send", `@${alice}`, "after");
    const third = t1.tail();
    await waitFor("the new one", () => third.out().includes("after"), { seen: third.out });
    expect(third.out()).not.toContain("while away");
    await third.stop();
  });

  it("says clearly what is wrong, and as whom", async () => {
    const t1 = terminal(alice);
    const notANumber = await t1.run("history", `@${bob}`, "-n", "abc");
    expect(notANumber.code).toBe(1);
    expect(notANumber.err).toMatch(/a whole number from 1 to 200/);
    const self = await t1.run("send", `@${alice}`, "to me");
    expect(self.err).toMatch(new RegExp(`@${alice} is you`));
    expect((await t1.run("list")).out).not.toContain("just you");
    const unknown = await t1.run("send", "no-such-group", "x");
    expect(unknown.err).toMatch(new RegExp(`\\(as ${alice}, device cli-[0-9a-f]+-[0-9a-f]+, on ${c.httpUrl.replace(/[.]/g, "\\.")}\\)`));
    // Two groups of one name: refused, with the candidates listed.
    await t1.run("group", "create", "friends", bob);
    await t1.run("group", "create", "friends", carol);
    const ambiguous = await t1.run("send", "friends", "hello");
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.err).toMatch(/2 groups are called "friends"/);
    expect(ambiguous.err).toContain(bob);
    expect(ambiguous.err).toContain(carol);
    // An edge that cannot be reached is named.
    const away = await terminal().run("-s", "http://127.0.0.1:1", "login", alice);
    expect(away.err).toContain("could not reach http://127.0.0.1:1");
  });

  it("prints control characters visibly instead of letting them command the terminal", async () => {
    await terminal(bob).run("send", `@${alice}`, "c1 \u009b31m red?");
    const h = await terminal(alice).run("history", `@${bob}`);
    expect(h.out).toContain("c1 \\x9b31m red?");
    expect(h.out).not.toContain("\u009b");
  });

  it("passwd logs out the account's other terminals; logout ends this one's session", async () => {
    const dave = `dave${suffix}`;
    // Two homes: a phone and a laptop of one account, each with its own session.
    const phone = terminal(dave);
    expect((await phone.run("signup", dave)).code).toBe(0);
    const laptopHome = fs.mkdtempSync(path.join(os.tmpdir(), "chatctl-"));
    const laptop = { run: (...args: string[]) => terminal(dave).run("--home", laptopHome, ...args) };
    expect((await laptop.run("login", dave)).code).toBe(0);
    expect((await laptop.run("list")).code).toBe(0);
    const changed = await phone.run("passwd", "--new", "a brand new password");
    expect(changed.out).toContain("password changed; 1 other session logged out");
    const refused = await laptop.run("list");
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("ERROR_CODE_SESSION_ENDED");
    expect((await phone.run("list")).code).toBe(0);
    expect((await phone.run("logout")).out).toContain(`logged out ${dave}`);
    expect((await phone.run("list")).err).toContain("not logged in");
    fs.rmSync(laptopHome, { recursive: true, force: true });
  });

  it("tail shows who is typing, and edits, deletions and replies made with one-shot commands", async () => {
    const bobTail = terminal(bob).tail(`@${alice}`);
    await bobTail.ready();
    const aliceTail = terminal(alice).tail(`@${bob}`);
    await aliceTail.ready();
    // Alice's keystrokes (before she presses enter) reach bob's tail as "typing…".
    aliceTail.type("hel");
    await waitFor("bob sees alice typing", () => bobTail.out().includes(`-- ${alice} is typing… --`), { seen: bobTail.out });
    aliceTail.type("lo bob\n");
    await waitFor("the message", () => /#(\d+) \S+: hello bob/.test(bobTail.out()), { seen: bobTail.out });
    const seq = /#(\d+) \S+: hello bob/.exec(bobTail.out())![1]!;
    expect((await terminal(alice).run("edit", `@${bob}`, seq, "hello bob (edited by hand)")).out).toContain(`edited #${seq}`);
    await waitFor("the edit in bob's tail", () => bobTail.out().includes(`-- #${seq} edited: hello bob (edited by hand) --`), { seen: bobTail.out });
    expect((await terminal(bob).run("reply", `@${alice}`, seq, "got it")).code).toBe(0);
    expect((await terminal(alice).run("delete", `@${bob}`, seq, "--everyone")).out).toContain(`deleted #${seq} for everyone`);
    await waitFor("the deletion in bob's tail", () => bobTail.out().includes(`-- #${seq} deleted --`), { seen: bobTail.out });
    const h = await terminal(bob).run("history", `@${alice}`, "-n", "5");
    expect(h.out).toContain(`#${seq} ${alice}: (deleted)`);
    expect(h.out).toMatch(new RegExp(`${bob}: \\(reply to #${seq}\\) got it`));
    const refused = await terminal(bob).run("edit", `@${alice}`, seq, "not mine");
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("ERROR_CODE_PERMISSION_DENIED");
    await Promise.all([bobTail.stop(), aliceTail.stop()]);
  });
  it("block, unblock, blocked, account delete: as a user would type them", async () => {
    const [erin, fred] = [`erin${suffix}`, `fred${suffix}`];
    const [e, f] = [terminal(erin), terminal(fred)];
    expect((await e.run("signup", erin)).code).toBe(0);
    expect((await f.run("signup", fred)).code).toBe(0);
    expect((await f.run("send", `@${erin}`, "hi erin")).code).toBe(0);
    expect((await e.run("block", fred)).out).toContain(`blocked ${fred}`);
    expect((await e.run("blocked")).out).toContain(`@${fred}`);
    const refused = await f.run("send", `@${erin}`, "hello?");
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("ERROR_CODE_PERMISSION_DENIED");
    const self = await e.run("block", erin);
    expect(self.code).toBe(1);
    expect(self.err).toContain("ERROR_CODE_INVALID_ARGUMENT");
    expect((await e.run("unblock", `@${fred}`)).out).toContain(`unblocked ${fred}`);
    expect((await e.run("blocked")).out).toContain("(nobody)");
    expect((await f.run("send", `@${erin}`, "hello again")).code).toBe(0);
    expect((await e.run("send", `@${fred}`, "from erin")).code).toBe(0);
    const direct = (await f.run("open", `@${erin}`)).out.trim();

    const wrong = await e.run("account", "delete", "--password", "not it");
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("ERROR_CODE_PERMISSION_DENIED");
    expect((await e.run("account", "delete")).out).toContain(`deleted the account ${erin}`);
    // Her messages stay, under a deleted account (no --erase).
    expect((await f.run("history", direct)).out).toContain("(deleted account): from erin");
    expect((await f.run("list")).out).toContain("(deleted account)");
    const gone = await e.run("list");
    expect(gone.code).toBe(1);
  });
});
