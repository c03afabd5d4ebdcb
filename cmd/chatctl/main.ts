#!/usr/bin/env node
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { Command } from "commander";
import { authenticate, ChatClient, ClientError, type Conversation, HistoryDirection, type Message } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";

/** What chatctl remembers per user between runs: token, device id and cursor. */
interface Profile {
  server: string;
  username: string;
  userId: string;
  token: string;
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
function profilePath(username: string): string {
  return path.join(home(), `${username}.json`);
}
function saveProfile(p: Profile): void {
  fs.mkdirSync(home(), { recursive: true, mode: 0o700 });
  fs.writeFileSync(profilePath(p.username), JSON.stringify(p, null, 2), { mode: 0o600 });
  fs.writeFileSync(path.join(home(), "current"), p.username);
}
function loadProfile(): Profile {
  const as = program.opts<{ as?: string }>().as ?? (fs.existsSync(path.join(home(), "current")) ? fs.readFileSync(path.join(home(), "current"), "utf8").trim() : "");
  if (!as || !fs.existsSync(profilePath(as))) throw new Error("not logged in: run `chatctl signup <username>` or `chatctl login <username>`");
  return JSON.parse(fs.readFileSync(profilePath(as), "utf8")) as Profile;
}

async function readPassword(opt?: string): Promise<string> {
  if (opt) return opt;
  if (process.env.CHATCTL_PASSWORD) return process.env.CHATCTL_PASSWORD;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const answer = await new Promise<string>((resolve) => rl.question("password: ", resolve));
  rl.close();
  return answer;
}

async function connect(p: Profile, opts: { live?: boolean } = {}): Promise<ChatClient> {
  const url = p.server.replace(/^http/, "ws") + "/v1/ws";
  const client = new ChatClient({ url, token: p.token, deviceId: p.deviceId, cursor: p.cursor, socket: nodeSocket, reconnect: opts.live ?? false });
  client.on("cursor", (pos) => { p.cursor = pos; });
  await client.connect();
  return client;
}

/** "@bob" opens (or finds) the direct conversation with bob; anything else is a conversation id. */
async function resolveConversation(client: ChatClient, target: string): Promise<Conversation> {
  if (target.startsWith("@")) return client.openDirect(target.slice(1));
  const found = (await client.listConversations()).find((c) => c.id === target || c.title === target);
  if (!found) throw new Error(`no conversation ${target}`);
  return found;
}

function name(c: Conversation, me: string): string {
  if (c.title) return c.title;
  return c.members.filter((m) => m.userId !== me).map((m) => "@" + m.username).join(", ") || "(just you)";
}

function line(m: Message, usernames: Map<string, string>): string {
  const t = new Date(m.sentAtMs).toLocaleTimeString();
  return `[${t}] #${m.seq} ${usernames.get(m.senderId) ?? m.senderId.slice(0, 8)}: ${m.text}`;
}

async function withClient<T>(fn: (client: ChatClient, p: Profile) => Promise<T>): Promise<T> {
  const p = loadProfile();
  const client = await connect(p);
  try {
    return await fn(client, p);
  } finally {
    client.close();
    saveProfile(p);
  }
}

for (const kind of ["signup", "login"] as const) {
  program
    .command(`${kind} <username>`)
    .description(kind === "signup" ? "create an account and log in" : "log in")
    .option("-p, --password <password>", "password (or CHATCTL_PASSWORD, or asked)")
    .action(async (username: string, o: { password?: string }) => {
      const server = program.opts<{ server: string }>().server;
      const r = await authenticate(server, kind, username, await readPassword(o.password));
      const existing = fs.existsSync(profilePath(r.username)) ? (JSON.parse(fs.readFileSync(profilePath(r.username), "utf8")) as Profile) : undefined;
      saveProfile({ server, username: r.username, userId: r.userId, token: r.token, deviceId: existing?.deviceId ?? `cli-${randomUUID().slice(0, 8)}`, cursor: existing?.cursor ?? 0 });
      console.log(`logged in as ${r.username} (${r.userId})`);
    });
}

program.command("list").description("your conversations with unread counts").action(() =>
  withClient(async (client, p) => {
    for (const c of await client.listConversations()) console.log(`${c.id}  ${name(c, p.userId).padEnd(30)}  ${c.lastSeq} messages, ${c.unread} unread${c.muted ? ", muted" : ""}`);
  }),
);

program.command("open <username>").description("open the direct conversation with a user").action((username: string) =>
  withClient(async (client) => console.log((await client.openDirect(username.replace(/^@/, ""))).id)),
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
  withClient(async (client) => {
    const conv = await resolveConversation(client, target);
    const sent = await client.send(conv.id, words.join(" "));
    console.log(`sent #${sent.seq}`);
  }),
);

program.command("history <conversation>").option("-n, --limit <n>", "messages", "20").action((target: string, o: { limit: string }) =>
  withClient(async (client) => {
    const conv = await resolveConversation(client, target);
    const usernames = new Map(conv.members.map((m) => [m.userId, m.username]));
    const page = await client.history(conv.id, { direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, limit: Number(o.limit) });
    for (const m of page.messages.reverse()) console.log(line(m, usernames));
  }),
);

program
  .command("tail [conversation]")
  .description("print new messages as they arrive; with a conversation, lines you type are sent to it")
  .action(async (target?: string) => {
    const p = loadProfile();
    const client = await connect(p, { live: true });
    const conv = target ? await resolveConversation(client, target) : undefined;
    const usernames = new Map<string, string>();
    for (const c of await client.listConversations()) for (const m of c.members) usernames.set(m.userId, m.username);
    if (conv) {
      const page = await client.history(conv.id, { limit: 20 });
      for (const m of page.messages.reverse()) console.log(line(m, usernames));
      console.log(`-- ${name(conv, p.userId)}: type a message and press enter; Ctrl-C to quit --`);
    }
    client.on("membership", (mc) => { for (const m of mc.conversation?.members ?? []) usernames.set(m.userId, m.username); });
    client.on("message", (m) => {
      if (conv && m.conversationId !== conv.id) return;
      if (!conv || m.senderId !== p.userId || m.senderDeviceId !== p.deviceId) console.log(line(m, usernames) + (conv ? "" : `  (${m.conversationId})`));
      if (conv) void client.markRead(m.conversationId, m.seq).catch(() => {});
    });
    client.on("state", (s) => { if (s === "closed") console.error("-- disconnected, reconnecting --"); });
    client.on("cursor", () => saveProfile(p));
    if (conv) {
      const rl = readline.createInterface({ input: process.stdin });
      rl.on("line", (text) => {
        if (!text.trim()) return;
        client.send(conv.id, text).then(
          (s) => console.log(line({ conversationId: conv.id, seq: s.seq, senderId: p.userId, senderDeviceId: p.deviceId, clientMsgId: "", text, sentAtMs: s.sentAtMs }, usernames)),
          (e: ClientError) => console.error(`!! ${e.codeName ?? ""} ${e.message}`),
        );
      });
    }
    process.on("SIGINT", () => { saveProfile(p); client.close(); process.exit(0); });
  });

program.parseAsync().catch((err: unknown) => {
  const e = err as ClientError;
  console.error(`error: ${e.codeName ? `${e.codeName}: ` : ""}${e.message}`);
  process.exit(1);
});
