import "./style.css";
import {
  authenticate,
  ChatClient,
  ClientError,
  type Conversation,
  HistoryDirection,
  type Message,
  type PresenceUpdate,
  type SocketLike,
} from "../../internal/client/client.js";
import { ConversationKind, PresenceStatus } from "../../gen/chat/v1/client.js";

interface Session {
  userId: string;
  username: string;
  token: string;
  deviceId: string;
  cursor: number;
}

interface ConvState {
  conversation: Conversation;
  messages: Map<number, Message>;
  /** Oldest seq loaded from history (0 = nothing loaded yet). */
  oldestLoaded: number;
  hasMoreHistory: boolean;
  receipts: Map<string, { delivered: number; read: number }>;
  myRead: number;
}

const STORE_KEY = "meshchat.session";
const DEVICE_KEY = "meshchat.device";

const app = document.getElementById("app")!;
const conversations = new Map<string, ConvState>();
const presence = new Map<string, PresenceUpdate>();
let client: ChatClient | undefined;
let session: Session | undefined;
let active: string | undefined;
let errorTimer: ReturnType<typeof setTimeout> | undefined;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

function deviceId(): string {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 12)}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function saveSession(): void {
  if (session) localStorage.setItem(STORE_KEY, JSON.stringify(session));
}

function showError(err: unknown): void {
  const banner = document.querySelector<HTMLElement>("[data-testid=error]");
  if (!banner) return;
  const e = err as ClientError;
  banner.textContent = e instanceof ClientError ? `${e.codeName.replace("ERROR_CODE_", "")}: ${e.message}` : String((err as Error).message ?? err);
  banner.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { banner.hidden = true; }, 8_000);
}

// ------------------------------------------------------------------ auth view

function renderAuth(): void {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: "", "data-testid": "username" });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: "", minlength: "8", "data-testid": "password" });
  const error = h("p", { class: "error", role: "alert", "data-testid": "error", hidden: "" });
  const submit = (kind: "signup" | "login") => async (ev: Event) => {
    ev.preventDefault();
    try {
      const r = await authenticate(location.origin, kind, username.value.trim(), password.value);
      session = { userId: r.userId, username: r.username, token: r.token, deviceId: deviceId(), cursor: 0 };
      const previous = localStorage.getItem(STORE_KEY);
      if (previous) {
        const p = JSON.parse(previous) as Session;
        if (p.userId === r.userId) session.cursor = p.cursor;
      }
      saveSession();
      await start();
    } catch (err) {
      error.textContent = err instanceof ClientError ? `${err.codeName.replace("ERROR_CODE_", "")}: ${err.message}` : String(err);
      error.hidden = false;
    }
  };
  const loginBtn = h("button", { type: "submit", "data-testid": "login" }, "Log in");
  const signupBtn = h("button", { type: "button", class: "secondary", "data-testid": "signup" }, "Sign up");
  const form = h("form", { class: "auth card", "aria-label": "Log in or sign up" },
    h("h1", {}, "meshchat"),
    h("label", { for: "username" }, "Username"), username,
    h("label", { for: "password" }, "Password"), password,
    error,
    h("div", { class: "row" }, loginBtn, signupBtn));
  form.addEventListener("submit", submit("login"));
  signupBtn.addEventListener("click", (ev) => { if (form.reportValidity()) void submit("signup")(ev); });
  app.replaceChildren(form);
  username.focus();
}

// ------------------------------------------------------------------ chat view

function title(c: Conversation): string {
  if (c.kind === ConversationKind.CONVERSATION_KIND_GROUP) return c.title || "Group";
  const others = c.members.filter((m) => m.userId !== session!.userId);
  return others.map((m) => m.username).join(", ") || `${session!.username} (you)`;
}

function peer(c: Conversation): string | undefined {
  if (c.kind !== ConversationKind.CONVERSATION_KIND_DIRECT) return undefined;
  return c.members.find((m) => m.userId !== session!.userId)?.userId;
}

function unread(s: ConvState): number {
  return Math.max(0, s.conversation.lastSeq - s.myRead);
}

function upsert(c: Conversation): ConvState {
  let s = conversations.get(c.id);
  if (!s) {
    s = { conversation: c, messages: new Map(), oldestLoaded: 0, hasMoreHistory: true, receipts: new Map(), myRead: c.readSeq };
    conversations.set(c.id, s);
  } else {
    s.conversation = { ...c, lastSeq: Math.max(c.lastSeq, s.conversation.lastSeq) };
  }
  for (const m of c.members) {
    const r = s.receipts.get(m.userId) ?? { delivered: 0, read: 0 };
    s.receipts.set(m.userId, { delivered: Math.max(r.delivered, m.deliveredSeq), read: Math.max(r.read, m.readSeq) });
  }
  const me = c.members.find((m) => m.userId === session!.userId);
  if (me) s.myRead = Math.max(s.myRead, me.readSeq);
  return s;
}

function renderShell(): void {
  const directInput = h("input", { id: "direct", placeholder: "username", "aria-label": "Open a chat with username", "data-testid": "direct-username" });
  const directForm = h("form", { class: "inline", "data-testid": "open-direct" }, directInput, h("button", { type: "submit" }, "Chat"));
  directForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = directInput.value.trim();
    if (!name) return;
    client!.openDirect(name).then((c) => { upsert(c); directInput.value = ""; open(c.id); }, showError);
  });
  const groupTitle = h("input", { placeholder: "group name", "aria-label": "Group name", "data-testid": "group-title" });
  const groupMembers = h("input", { placeholder: "members: ana, bo", "aria-label": "Group members", "data-testid": "group-members" });
  const groupForm = h("form", { class: "stack", "data-testid": "create-group" }, groupTitle, groupMembers, h("button", { type: "submit" }, "Create group"));
  groupForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const names = groupMembers.value.split(/[\s,]+/).filter(Boolean);
    client!.createGroup(groupTitle.value.trim(), names).then((c) => { upsert(c); groupTitle.value = ""; groupMembers.value = ""; open(c.id); }, showError);
  });
  const logout = h("button", { class: "link", "data-testid": "logout" }, "Log out");
  logout.addEventListener("click", () => { client?.close(); client = undefined; session = undefined; localStorage.removeItem(STORE_KEY); conversations.clear(); active = undefined; renderAuth(); });
  const sidebar = h("aside", { class: "sidebar" },
    h("header", { class: "me" }, h("strong", { "data-testid": "me" }, session!.username), logout),
    directForm,
    h("details", {}, h("summary", {}, "New group"), groupForm),
    h("nav", { "aria-label": "Conversations" }, h("ul", { id: "conversations", "data-testid": "conversations" })));
  const main = h("main", { class: "chat" },
    h("div", { class: "banner", id: "reconnecting", "data-testid": "reconnecting", hidden: "", role: "status" }, "Reconnecting…"),
    h("div", { class: "banner error", "data-testid": "error", hidden: "", role: "alert" }),
    h("section", { id: "pane", class: "pane" }, h("p", { class: "empty" }, "Pick a conversation, or open one by username.")));
  app.replaceChildren(h("div", { class: "layout" }, sidebar, main));
}

function renderList(): void {
  const ul = document.getElementById("conversations");
  if (!ul) return;
  const items = [...conversations.values()].sort((a, b) => (lastAt(b) - lastAt(a)) || a.conversation.id.localeCompare(b.conversation.id));
  ul.replaceChildren(...items.map((s) => {
    const c = s.conversation;
    const p = peer(c);
    const dot = h("span", { class: `dot ${p && presence.get(p)?.status === PresenceStatus.PRESENCE_STATUS_ONLINE ? "online" : "offline"}`, "aria-hidden": "true" });
    const n = unread(s);
    const btn = h("button", { class: `conv ${c.id === active ? "active" : ""}`, "data-testid": "conversation", "data-title": title(c) }, dot, h("span", { class: "title" }, title(c)));
    if (n > 0) btn.append(h("span", { class: "badge", "data-testid": "unread", "aria-label": `${n} unread` }, String(n)));
    btn.addEventListener("click", () => open(c.id));
    return h("li", {}, btn);
  }));
}

function lastAt(s: ConvState): number {
  let t = s.conversation.createdAtMs;
  for (const m of s.messages.values()) t = Math.max(t, m.sentAtMs);
  return t;
}

function mark(s: ConvState, m: Message): string {
  if (m.senderId !== session!.userId) return "";
  const others = [...s.receipts].filter(([u]) => u !== session!.userId).map(([, r]) => r);
  if (others.some((r) => r.read >= m.seq)) return "read";
  if (others.some((r) => r.delivered >= m.seq)) return "delivered";
  return "sent";
}

function renderPane(): void {
  const pane = document.getElementById("pane");
  if (!pane) return;
  const s = active ? conversations.get(active) : undefined;
  if (!s) return;
  const c = s.conversation;
  const p = peer(c);
  const status = p ? presence.get(p) : undefined;
  const header = h("header", { class: "pane-header" },
    h("h2", { "data-testid": "conversation-title" }, title(c)),
    p ? h("span", { class: "presence", "data-testid": "presence" }, status?.status === PresenceStatus.PRESENCE_STATUS_ONLINE ? "online" : status?.lastActiveAtMs ? `last seen ${new Date(status.lastActiveAtMs).toLocaleTimeString()}` : "offline")
      : h("span", { class: "presence" }, `${c.members.length} members`));
  if (c.kind === ConversationKind.CONVERSATION_KIND_GROUP) {
    const add = h("input", { placeholder: "add member", "aria-label": "Add member", "data-testid": "add-member" });
    const form = h("form", { class: "inline" }, add, h("button", { type: "submit" }, "Add"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); client!.addMember(c.id, add.value.trim()).then((cc) => { upsert(cc); add.value = ""; renderPane(); }, showError); });
    header.append(form);
  }
  const list = h("ol", { class: "messages", "data-testid": "messages", "aria-live": "polite" });
  if (s.hasMoreHistory && s.oldestLoaded !== 1) {
    const older = h("button", { class: "link older", "data-testid": "load-older" }, "Load older messages");
    older.addEventListener("click", () => void loadHistory(s, true));
    list.append(h("li", { class: "older-row" }, older));
  }
  const sorted = [...s.messages.values()].sort((a, b) => a.seq - b.seq);
  const names = new Map(c.members.map((m) => [m.userId, m.username]));
  for (const m of sorted) {
    const mine = m.senderId === session!.userId;
    const state = mark(s, m);
    list.append(h("li", { class: `msg ${mine ? "mine" : ""}`, "data-testid": "message", "data-seq": String(m.seq), "data-state": state },
      mine ? "" : h("span", { class: "who" }, names.get(m.senderId) ?? "someone"),
      h("p", { class: "text" }, m.text),
      h("span", { class: "meta" }, new Date(m.sentAtMs).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), mine ? h("span", { class: `tick ${state}`, "data-testid": "mark", title: state }, state === "sent" ? "✓" : "✓✓") : "")));
  }
  // The composer survives re-renders (events arrive while the user types).
  if (pane.dataset.conversation === c.id) {
    const [oldHeader, oldList] = [pane.querySelector(".pane-header"), pane.querySelector(".messages")];
    const keep = oldList && oldList.scrollHeight - oldList.scrollTop - oldList.clientHeight < 40;
    // So does the add-member box: a presence update or receipt must not wipe what is being typed.
    const oldForm = oldHeader?.querySelector("form.inline");
    const newForm = header.querySelector("form.inline");
    if (oldForm && newForm) newForm.replaceWith(oldForm);
    oldHeader?.replaceWith(header);
    oldList?.replaceWith(list);
    if (keep) list.scrollTop = list.scrollHeight;
    return;
  }
  const text = h("textarea", { rows: "2", placeholder: "Message", "aria-label": "Message", "data-testid": "composer" });
  const composer = h("form", { class: "composer", "data-testid": "send-form" }, text, h("button", { type: "submit", "data-testid": "send" }, "Send"));
  const send = () => {
    const body = text.value;
    if (!body.trim()) return;
    text.value = "";
    client!.send(c.id, body).then((sent) => {
      // The event with the message arrives through the sync log; this covers a slow one.
      if (!s.messages.has(sent.seq)) s.messages.set(sent.seq, { conversationId: c.id, seq: sent.seq, senderId: session!.userId, senderDeviceId: session!.deviceId, clientMsgId: sent.clientMsgId, text: body, sentAtMs: sent.sentAtMs });
      s.conversation.lastSeq = Math.max(s.conversation.lastSeq, sent.seq);
      s.myRead = Math.max(s.myRead, sent.seq);
      renderPane();
      renderList();
    }, (err) => { if (!text.value) text.value = body; showError(err); });
  };
  composer.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  text.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); send(); } });
  pane.dataset.conversation = c.id;
  pane.replaceChildren(header, list, composer);
  list.scrollTop = list.scrollHeight;
}

async function loadHistory(s: ConvState, older: boolean): Promise<void> {
  try {
    const page = await client!.history(s.conversation.id, { direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, fromSeq: older ? s.oldestLoaded : 0, limit: 30 });
    for (const m of page.messages) s.messages.set(m.seq, m);
    const oldest = page.messages[page.messages.length - 1]?.seq;
    if (oldest !== undefined && (s.oldestLoaded === 0 || oldest < s.oldestLoaded)) s.oldestLoaded = oldest;
    s.hasMoreHistory = page.hasMore;
    if (active === s.conversation.id) renderPane();
  } catch (err) {
    showError(err);
  }
}

function markRead(s: ConvState): void {
  const last = s.conversation.lastSeq;
  if (document.visibilityState !== "visible" || last <= s.myRead) return;
  s.myRead = last;
  client?.markRead(s.conversation.id, last).catch(() => {});
  renderList();
}

function open(id: string): void {
  active = id;
  const s = conversations.get(id);
  if (!s) return;
  renderList();
  renderPane();
  if (s.oldestLoaded === 0) void loadHistory(s, false);
  markRead(s);
  document.querySelector<HTMLTextAreaElement>("[data-testid=composer]")?.focus();
}

async function start(): Promise<void> {
  renderShell();
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  client = new ChatClient({
    url: wsUrl,
    token: session!.token,
    deviceId: session!.deviceId,
    cursor: session!.cursor,
    socket: (url, protocols) => new WebSocket(url, protocols) as unknown as SocketLike,
  });
  client.on("cursor", (pos) => { session!.cursor = pos; saveSession(); });
  client.on("state", (st) => {
    const banner = document.getElementById("reconnecting");
    if (banner) banner.hidden = st === "open";
    if (st === "open") void refreshConversations();
  });
  client.on("message", (m) => {
    let s = conversations.get(m.conversationId);
    if (!s) { void refreshConversations(); return; }
    s.messages.set(m.seq, m);
    s.conversation.lastSeq = Math.max(s.conversation.lastSeq, m.seq);
    if (m.senderId === session!.userId) s.myRead = Math.max(s.myRead, m.seq);
    if (active === m.conversationId) { renderPane(); markRead(s); }
    renderList();
  });
  client.on("membership", (mc) => {
    if (mc.conversation) upsert(mc.conversation);
    void subscribePresence();
    renderList();
    if (active === mc.conversationId) renderPane();
  });
  client.on("read", (r) => {
    const s = conversations.get(r.conversationId);
    if (s) { s.myRead = Math.max(s.myRead, r.readSeq); renderList(); }
  });
  client.on("receipt", (r) => {
    const s = conversations.get(r.conversationId);
    if (!s) return;
    s.receipts.set(r.userId, { delivered: r.deliveredSeq, read: r.readSeq });
    if (active === r.conversationId) renderPane();
  });
  client.on("presence", (p) => {
    presence.set(p.userId, p);
    renderList();
    if (active) renderPane();
  });
  // Back online: check the connection at once instead of waiting for the next heartbeat.
  window.addEventListener("online", () => client?.heartbeatNow());
  document.addEventListener("visibilitychange", () => { const s = active ? conversations.get(active) : undefined; if (s) markRead(s); });
  try {
    await client.connect();
  } catch (err) {
    showError(err);
    if (err instanceof ClientError && err.code === 3) { localStorage.removeItem(STORE_KEY); renderAuth(); }
  }
}

async function refreshConversations(): Promise<void> {
  if (!client) return;
  try {
    for (const c of await client.listConversations()) upsert(c);
    renderList();
    if (active) renderPane();
    await subscribePresence();
  } catch (err) {
    showError(err);
  }
}

async function subscribePresence(): Promise<void> {
  const peers = [...conversations.values()].map((s) => peer(s.conversation)).filter((p): p is string => Boolean(p));
  if (peers.length === 0 || !client) return;
  try {
    for (const p of await client.presenceSubscribe([...new Set(peers)].slice(0, 500))) presence.set(p.userId, p);
    renderList();
  } catch {
    // Presence is a nicety: the chat works without it.
  }
}

const saved = localStorage.getItem(STORE_KEY);
if (saved) {
  session = JSON.parse(saved) as Session;
  void start();
} else {
  renderAuth();
}
