#!/usr/bin/env node
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { Command, InvalidArgumentError } from "commander";
import { authenticate, ChatClient, ClientError, type Conversation, HistoryDirection, type Member, type Message } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";
import { TypingIndicators } from "../../internal/client/typing.js";
import { printable } from "../../internal/cli/printable.js";
import { SessionFile } from "../../internal/cli/session-file.js";
import type { AuthSession } from "../../internal/client/auth.js";

/** What chatctl remembers per user between runs: device id and cursor (the session's tokens are in sessionFile()). */
interface Profile {
  server: string;
  username: string;
  userId: string;
  deviceId: string;
  cursor: number;
}

const program = new Command();
program
  .name("chatctl")
  .description("Command-line client for meshchat")
  .option("-s, --server <url>", "edge base URL", process.env.CHATCTL_SERVER ?? "http://127.0.0.1:8080")
  .option("--as <username>", "act as this (logged-in) user", process.env.CHATCTL_USER)
  .option("--home <dir>", "where sessions are kept", process.env.CHATCTL_HOME ?? path.join(os.homedir(), ".meshchat"));

function home(): string {
  return program.opts<{ home: string }>().home;
}

/** The edge to use: -s (or CHATCTL_SERVER) when given, else the one the profile logged in to. */
function serverFor(p?: Profile): string {
  const source = program.getOptionValueSource("server");
  return source === "cli" || source === "env" || !p ? program.opts<{ server: string }>().server : p.server;
}

/** Who and where a command acted as, for its error messages. */
let actingAs = "";
function profilePath(username: string): string {
  return path.join(home(), `${username}.json`);
}
function sessionFile(username: string): SessionFile {
  return new SessionFile(path.join(home(), `${username}.session.json`));
}
/** Written whole or not at all: another chatctl may be reading it at that moment. */
function writeAtomically(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
function saveProfile(p: Profile): void {
  fs.mkdirSync(home(), { recursive: true, mode: 0o700 });
  const { server, username, userId, deviceId, cursor } = p;
  writeAtomically(profilePath(p.username), JSON.stringify({ server, username, userId, deviceId, cursor }, null, 2));
  writeAtomically(path.join(home(), "current"), p.username);
}
/**
 * The user a command acts as: --as or CHATCTL_USER, else the last one who logged in here.
 * Two terminals that act as two users set CHATCTL_USER each (the README's walkthrough).
 */
function loadProfile(): Profile {
  const as = program.opts<{ as?: string }>().as ?? (fs.existsSync(path.join(home(), "current")) ? fs.readFileSync(path.join(home(), "current"), "utf8").trim() : "");
  if (!as || !fs.existsSync(profilePath(as))) throw new Error(`not logged in${as ? ` as ${as}` : ""}: run \`chatctl signup <username>\` or \`chatctl login <username>\``);
  const p = JSON.parse(fs.readFileSync(profilePath(as), "utf8")) as Profile;
  actingAs = `as ${p.username}`;
  return p;
}

/** The profile's session; a profile from before sessions (or after `logout`) has none. */
function authFor(p: Profile): AuthSession {
  const auth = sessionFile(p.username).session(serverFor(p));
  if (!auth) throw new Error(`not logged in as ${p.username}: run \`chatctl login ${p.username}\``);
  return auth;
}

async function readPassword(opt?: string, env = "CHATCTL_PASSWORD", prompt = "password: "): Promise<string> {
  if (opt) return opt;
  if (process.env[env]) return process.env[env];
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const answer = await new Promise<string>((resolve) => rl.question(prompt, resolve));
  rl.close();
  return answer;
}

/**
 * A session for one command. `tail` is the profile's device and moves its cursor: what it
 * prints is what it consumed. Any other command is a device of its own for its lifetime
 * (so it runs beside a `tail`), starts from the profile's cursor and never moves it.
 */
async function connect(p: Profile, opts: { live?: boolean; beforeConnect?: (c: ChatClient) => void } = {}): Promise<ChatClient> {
  const server = serverFor(p);
  const url = server.replace(/^http/, "ws") + "/v1/ws";
  const deviceId = opts.live ? p.deviceId : `${p.deviceId}-${randomUUID().slice(0, 6)}`;
  actingAs = `as ${p.username}, device ${deviceId}, on ${server}`;
  const client = new ChatClient({ url, auth: authFor(p), deviceId, cursor: p.cursor, socket: nodeSocket, reconnect: opts.live ?? false });
  if (opts.live) client.on("cursor", (pos) => { p.cursor = pos; });
  opts.beforeConnect?.(client);
  await client.connect();
  return client;
}


/** "@bob" opens (or finds) the direct conversation with bob; anything else is a conversation id or a group title. */
async function resolveConversation(client: ChatClient, target: string, p: Profile): Promise<Conversation> {
  if (target.startsWith("@")) {
    if (target.slice(1).toLowerCase() === p.username) throw new Error(`${target} is you: name someone else`);
    return client.openDirect(target.slice(1));
  }
  const all = await client.listConversations();
  const byId = all.find((c) => c.id === target);
  if (byId) return byId;
  const titled = all.filter((c) => c.title === target);
  if (titled.length === 1) return titled[0]!;
  if (titled.length > 1) {
    throw new Error(`${titled.length} groups are called "${target}"; use an id:\n${titled.map((c) => `  ${c.id}  ${c.members.map(memberName).join(", ")}`).join("\n")}`);
  }
  throw new Error(`no conversation ${target} (a conversation id, a group title, or @username)`);
}

function name(c: Conversation, me: string): string {
  // Another user chose the title: shown, never obeyed, like message text.
  if (c.title) return printable(c.title);
  return c.members.filter((m) => m.userId !== me).map((m) => (m.accountDeleted ? memberName(m) : "@" + m.username)).join(", ") || "(just you)";
}

/** How a member is named: a deleted account has no name any more. */
function memberName(m: Member): string {
  return m.accountDeleted ? "(deleted account)" : m.username;
}

function line(m: Message, usernames: Map<string, string>): string {
  const t = new Date(m.sentAtMs).toLocaleTimeString();
  const body = (m.replyToSeq ? `(reply to #${m.replyToSeq}) ` : "") + (m.deleted ? "(deleted)" : `${printable(m.text)}${m.editedAtMs ? " (edited)" : ""}`);
  return `[${t}] #${m.seq} ${usernames.get(m.senderId) ?? m.senderId.slice(0, 8)}: ${body}`;
}

async function withClient<T>(fn: (client: ChatClient, p: Profile) => Promise<T>): Promise<T> {
  const p = loadProfile();
  const client = await connect(p);
  try {
    return await fn(client, p);
  } finally {
    await client.close();
  }
}

for (const kind of ["signup", "login"] as const) {
  program
    .command(`${kind} <username>`)
    .description(kind === "signup" ? "create an account and log in" : "log in")
    .option("-p, --password <password>", "password (or CHATCTL_PASSWORD, or asked)")
    .action(async (username: string, o: { password?: string }) => {
      const server = program.opts<{ server: string }>().server;
      actingAs = `on ${server}`;
      const existing = fs.existsSync(profilePath(username)) ? (JSON.parse(fs.readFileSync(profilePath(username), "utf8")) as Profile) : undefined;
      const deviceId = existing?.deviceId ?? `cli-${randomUUID().slice(0, 8)}`;
      const r = await authenticate(server, kind, username, await readPassword(o.password), deviceId).catch((err: Error) => {
        // fetch's own text ("fetch failed") does not say where it went.
        throw err instanceof ClientError ? err : new Error(`could not reach ${server}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
      });
      fs.mkdirSync(home(), { recursive: true, mode: 0o700 });
      sessionFile(r.username).write(r);
      saveProfile({ server, username: r.username, userId: r.userId, deviceId, cursor: existing?.cursor ?? 0 });
      console.log(`logged in as ${r.username} (${r.userId})`);
    });
}

program.command("logout").description("end this session on the server (its tokens stop working everywhere)").action(async () => {
  const p = loadProfile();
  await authFor(p).logout();
  sessionFile(p.username).remove();
  console.log(`logged out ${p.username}`);
});

program
  .command("passwd")
  .description("change your password; every other session of the account is logged out")
  .option("--old <password>", "current password (or CHATCTL_PASSWORD, or asked)")
  .option("--new <password>", "new password (or CHATCTL_NEW_PASSWORD, or asked)")
  .action(async (o: { old?: string; new?: string }) => {
    const p = loadProfile();
    const auth = authFor(p);
    const ended = await auth.changePassword(await readPassword(o.old), await readPassword(o.new, "CHATCTL_NEW_PASSWORD", "new password: "));
    console.log(`password changed; ${ended} other session${ended === 1 ? "" : "s"} logged out`);
  });

program.command("list").description("your conversations with unread counts").action(() =>
  withClient(async (client, p) => {
    for (const c of await client.listConversations()) console.log(`${c.id}  ${name(c, p.userId).padEnd(30)}  ${c.lastSeq} messages, ${c.unread} unread${c.muted ? ", muted" : ""}`);
  }),
);

program.command("open <username>").description("open the direct conversation with a user").action((username: string) =>
  withClient(async (client, p) => console.log((await resolveConversation(client, `@${username.replace(/^@/, "")}`, p)).id)),
);

const group = program.command("group").description("group conversations");
group.command("create <title> <usernames...>").action((title: string, usernames: string[]) =>
  withClient(async (client) => console.log((await client.createGroup(title, usernames.map((u) => u.replace(/^@/, "")))).id)),
);
group.command("add <conversation> <username>").action((conv: string, username: string) =>
  withClient(async (client) => { await client.addMember(conv, username.replace(/^@/, "")); console.log("added"); }),
);
group.command("remove <conversation> <username>").action((conv: string, username: string) =>
  withClient(async (client) => { await client.removeMember(conv, username.replace(/^@/, "")); console.log("removed"); }),
);
group.command("leave <conversation>").action((conv: string) => withClient(async (client) => { await client.leave(conv); console.log("left"); }));

program.command("send <conversation> <text...>").description("send a message (conversation id, group title, or @username)").action((target: string, words: string[]) =>
  withClient(async (client, p) => {
    const conv = await resolveConversation(client, target, p);
    const sent = await client.send(conv.id, words.join(" "));
    console.log(`sent #${sent.seq}`);
  }),
);

const seqArg = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("a message number (#seq), 1 or more");
  return n;
};
program.command("reply <conversation> <seq> <text...>").description("reply to a message of the conversation").action((target: string, seq: string, words: string[]) =>
  withClient(async (client, p) => {
    const conv = await resolveConversation(client, target, p);
    const sent = await client.reply(conv.id, seqArg(seq.replace(/^#/, "")), words.join(" "));
    console.log(`sent #${sent.seq}`);
  }),
);
program.command("edit <conversation> <seq> <text...>").description("replace the text of one of your messages").action((target: string, seq: string, words: string[]) =>
  withClient(async (client, p) => {
    const conv = await resolveConversation(client, target, p);
    await client.edit(conv.id, seqArg(seq.replace(/^#/, "")), words.join(" "));
    console.log(`edited #${seq.replace(/^#/, "")}`);
  }),
);
program.command("delete <conversation> <seq>").description("delete a message for you (on all your devices), or with --everyone for everyone")
  .option("--everyone", "delete it for everyone (your own message within DELETE_WINDOW_S; a group's creator any message)")
  .action((target: string, seq: string, o: { everyone?: boolean }) =>
    withClient(async (client, p) => {
      const conv = await resolveConversation(client, target, p);
      await client.deleteMessage(conv.id, seqArg(seq.replace(/^#/, "")), Boolean(o.everyone));
      console.log(`deleted #${seq.replace(/^#/, "")}${o.everyone ? " for everyone" : " for you"}`);
    }),
  );

program.command("block <username>").description("block a user: no direct messages, presence, typing, receipts or pushes between you").action((username: string) =>
  withClient(async (client) => { await client.block(username.replace(/^@/, "")); console.log(`blocked ${username.replace(/^@/, "")}`); }),
);
program.command("unblock <username>").description("unblock a user").action((username: string) =>
  withClient(async (client) => { await client.unblock(username.replace(/^@/, "")); console.log(`unblocked ${username.replace(/^@/, "")}`); }),
);
program.command("blocked").description("the users you blocked, most recent first").action(() =>
  withClient(async (client) => {
    const users = await client.listBlocked();
    if (users.length === 0) console.log("(nobody)");
    for (const u of users) console.log(`@${u.username}  since ${new Date(u.blockedAtMs).toLocaleString()}`);
  }),
);

const account = program.command("account").description("your account");
account.command("delete")
  .description("delete your account: every device is logged out, the username is never reused; --erase deletes your messages for everyone")
  .option("-p, --password <password>", "password (or CHATCTL_PASSWORD, or asked)")
  .option("--erase", "delete every message you sent, for everyone (otherwise they stay, under \"deleted account\")")
  .action((o: { password?: string; erase?: boolean }) =>
    withClient(async (client, p) => {
      await client.deleteAccount(await readPassword(o.password), { erase: Boolean(o.erase) });
      // Nothing of the account is worth keeping here: its tokens are refused everywhere now.
      sessionFile(p.username).remove();
      fs.rmSync(profilePath(p.username), { force: true });
      console.log(`deleted the account ${p.username}${o.erase ? " and its messages" : ""}`);
    }),
  );

const pageSize = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new InvalidArgumentError("a whole number from 1 to 200");
  return n;
};
program.command("history <conversation>").option("-n, --limit <n>", "messages (1-200)", pageSize, 20).action((target: string, o: { limit: number }) =>
  withClient(async (client, p) => {
    const conv = await resolveConversation(client, target, p);
    const usernames = new Map(conv.members.map((m) => [m.userId, memberName(m)]));
    const page = await client.history(conv.id, { direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, limit: o.limit });
    for (const m of page.messages.reverse()) console.log(line(m, usernames));
  }),
);

program
  .command("tail [conversation]")
  .description("print new messages as they arrive, from where this device left off; with a conversation, lines you type are sent to it")
  .action(async (target?: string) => {
    const p = loadProfile();
    // From the start, so a stop while connecting still saves what was printed and closes cleanly.
    let live: ChatClient | undefined;
    let ready = false;
    // Until the held events are printed, the cursor is past lines not shown: keep the saved one then.
    const stop = async () => { if (ready) saveProfile(p); await live?.close(); process.exit(0); };
    process.on("SIGINT", () => void stop());
    process.on("SIGTERM", () => void stop());
    const usernames = new Map<string, string>();
    // Every event this device consumes is printed exactly once, in order: those of the catch-up too
    // (held until the conversation's recent history is out), and other conversations' ones, marked.
    const held: Message[] = [];
    let conv: Conversation | undefined;
    let shownUpTo = 0;
    const titles = new Map<string, string>();
    const show = (m: Message) => {
      if (conv && m.conversationId === conv.id) {
        if (m.seq <= shownUpTo) return; // already printed with the history
        shownUpTo = m.seq;
        if (m.senderId !== p.userId || m.senderDeviceId !== p.deviceId) console.log(line(m, usernames));
        void client.markRead(m.conversationId, m.seq).catch(() => {});
      } else {
        console.log(`${line(m, usernames)}  (${titles.get(m.conversationId) ?? m.conversationId})`);
      }
    };
    const client = await connect(p, {
      live: true,
      beforeConnect: (c) => {
        live = c;
        c.on("message", (m) => (ready ? show(m) : held.push(m)));
        // Away longer than the server keeps its log (docs/sync-log-trim.md): what was missed is in history.
        c.on("reset", (why) => { if (why === "trimmed") console.error("(this device was away longer than the server keeps its log: events from before are not replayed; `chatctl history` shows the messages)"); });
      },
    });
    for (const c of await client.listConversations()) {
      titles.set(c.id, name(c, p.userId));
      for (const m of c.members) usernames.set(m.userId, memberName(m));
    }
    if (target) {
      conv = await resolveConversation(client, target, p);
      for (const m of conv.members) usernames.set(m.userId, memberName(m));
      const page = await client.history(conv.id, { limit: 20 });
      shownUpTo = Math.max(0, ...page.messages.map((m) => m.seq));
      for (const m of [...page.messages].reverse()) console.log(line(m, usernames));
      console.log(`-- ${name(conv, p.userId)}: type a message and press enter; Ctrl-C to quit --`);
    }
    ready = true;
    for (const m of held.splice(0)) show(m);
    saveProfile(p);
    client.on("membership", (mc) => {
      if (mc.conversation) titles.set(mc.conversationId, name(mc.conversation, p.userId));
      for (const m of mc.conversation?.members ?? []) usernames.set(m.userId, memberName(m));
    });
    client.on("state", (s) => { if (s === "closed") console.error("-- disconnected, reconnecting --"); });
    client.on("edited", (e) => console.log(`-- #${e.seq} edited: ${printable(e.text)}${conv && e.conversationId === conv.id ? "" : ` (${titles.get(e.conversationId) ?? e.conversationId})`} --`));
    client.on("deleted", (d) => console.log(`-- #${d.seq} deleted${d.forEveryone ? "" : " for you"}${conv && d.conversationId === conv.id ? "" : ` (${titles.get(d.conversationId) ?? d.conversationId})`} --`));
    // "alice is typing…" when someone starts (it ends by itself, or with their message).
    const typing = new TypingIndicators(client, (conversationId) => {
      const label = typing.label(conversationId);
      if (label) console.log(`-- ${printable(label)}${conv && conversationId === conv.id ? "" : ` (${titles.get(conversationId) ?? conversationId})`} --`);
    });
    client.on("cursor", () => saveProfile(p));
    if (conv) {
      const into = conv;
      const rl = readline.createInterface({ input: process.stdin });
      // Keystrokes say "typing" (the client sends at most one per interval).
      process.stdin.on("data", () => void client.typing(into.id).catch(() => {}));
      rl.on("line", (text) => {
        if (!text.trim()) return;
        client.send(into.id, text).then(
          (s) => console.log(line({ conversationId: into.id, seq: s.seq, senderId: p.userId, senderDeviceId: p.deviceId, clientMsgId: "", text, sentAtMs: s.sentAtMs, editedAtMs: 0, deleted: false, replyToSeq: 0 }, usernames)),
          (e: ClientError) => console.error(`!! ${e.codeName ?? ""} ${e.message}`),
        );
      });
    }
    console.error(`-- tailing as ${p.username} (device ${p.deviceId}) --`);
  });

program.parseAsync().catch((err: unknown) => {
  const e = err as ClientError;
  console.error(`error${actingAs ? ` (${actingAs})` : ""}: ${e.codeName ? `${e.codeName}: ` : ""}${e.message}`);
  process.exit(1);
});
