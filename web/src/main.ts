import "./style.css";
import {
  authenticate,
  ChatClient,
  ClientError,
  type Conversation,
  ErrorCode,
  HistoryDirection,
  type Member,
  type Message,
  type PresenceUpdate,
  type SessionTokens,
  type SocketLike,
} from "../../internal/client/client.js";
import { AuthSession } from "../../internal/client/auth.js";
import { TypingIndicators } from "../../internal/client/typing.js";
import { ConversationKind, PresenceStatus } from "../../gen/chat/v1/client.js";
import { clearError, showErrorIn, showMessageIn } from "./errors.js";
import { dayLabel, differentDays, isLong, preview, relativeTime, tabTitle, timeOfDay } from "./format.js";

/** Who is logged in on this browser and how far its sync log was applied (the tokens are kept apart: TOKENS_KEY). */
interface Session {
  userId: string;
  username: string;
  deviceId: string;
  cursor: number;
}

interface ConvState {
  conversation: Conversation;
  messages: Map<number, Message>;
  /** The newest message known, for the list's preview and its order by last activity. */
  last: Message | undefined;
  /** Oldest seq loaded from history (0 = nothing loaded yet). */
  oldestLoaded: number;
  hasMoreHistory: boolean;
  receipts: Map<string, { delivered: number; read: number }>;
  myRead: number;
}

const STORE_KEY = "meshchat.session";
const DEVICE_KEY = "meshchat.device";
/**
 * The session's tokens (refresh token included), shared by this origin's tabs so one
 * log-in serves them all and a refresh by one is seen by the others; docs/security.md
 * ("Sessions") says why here and not in a cookie.
 */
const TOKENS_KEY = "meshchat.tokens";
/** How often an open page checks whether its access token is due for a refresh (refreshed at 80% of its life). */
const TOKEN_CHECK_MS = 30_000;
/** How often "last seen 3 min ago" is brought up to date. */
const RELATIVE_REFRESH_MS = 30_000;

const app = document.getElementById("app")!;
const conversations = new Map<string, ConvState>();
const presence = new Map<string, PresenceUpdate>();
/** The users this account blocked (read once connected, changed by the conversation header's button). */
const blocked = new Set<string>();
/** Long messages the reader expanded ("conversation:seq"), kept across re-renders. */
const expanded = new Set<string>();
let client: ChatClient | undefined;
/** Who is typing where ("alice is typing…" in the conversation's header). */
let typing: TypingIndicators | undefined;
let session: Session | undefined;
let auth: AuthSession | undefined;
let tokenTimer: ReturnType<typeof setInterval> | undefined;
let active: string | undefined;
let wasOffline = false;
let backOnlineTimer: ReturnType<typeof setTimeout> | undefined;
let relativeTimer: ReturnType<typeof setInterval> | undefined;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

/** An inline error line placed right under what it is about. */
function errorLine(testId: string): HTMLParagraphElement {
  return h("p", { class: "field-error", role: "alert", "data-testid": testId, hidden: "" });
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

function storedTokens(): SessionTokens | null {
  const raw = localStorage.getItem(TOKENS_KEY);
  const t = raw ? (JSON.parse(raw) as SessionTokens) : null;
  return t?.refreshToken ? t : null;
}

/**
 * The session's tokens, refreshed by whichever tab gets there first: refreshes run one at a time
 * across tabs (Web Locks) and re-read storage inside the lock, because presenting a refresh token
 * another tab already spent would end the session for all of them.
 */
function authSession(tokens: SessionTokens): AuthSession {
  const locks = navigator.locks;
  return new AuthSession(location.origin, tokens, {
    onTokens: (t) => localStorage.setItem(TOKENS_KEY, JSON.stringify(t)),
    reload: storedTokens,
    exclusive: locks ? <T>(fn: () => Promise<T>) => locks.request("meshchat.refresh", fn) as Promise<T> : undefined,
  });
}

/** Forgets the session on this browser and shows the log-in form (`why` explains, when the server ended it). */
function signedOut(why?: unknown): void {
  if (!session) return;
  void client?.close();
  client = undefined;
  auth = undefined;
  session = undefined;
  clearInterval(tokenTimer);
  clearInterval(relativeTimer);
  localStorage.removeItem(STORE_KEY);
  localStorage.removeItem(TOKENS_KEY);
  conversations.clear();
  active = undefined;
  renderAuth();
  if (why) showErrorIn(document.querySelector<HTMLElement>("[data-testid=auth-error]")!, why);
}

/** The server will not take this session any more: only a new log-in helps. */
function sessionOver(err: unknown): boolean {
  return err instanceof ClientError && [ErrorCode.ERROR_CODE_SESSION_ENDED, ErrorCode.ERROR_CODE_UNAUTHENTICATED].includes(err.code);
}

function pageHidden(): boolean {
  return document.visibilityState !== "visible";
}

// ------------------------------------------------------------------ auth view

function renderAuth(): void {
  document.title = tabTitle(0);
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: "", "data-testid": "username" });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: "", minlength: "8", "data-testid": "password" });
  const error = errorLine("auth-error");
  for (const input of [username, password]) input.addEventListener("input", () => clearError(error));
  const submit = (kind: "signup" | "login") => async (ev: Event) => {
    ev.preventDefault();
    try {
      const r = await authenticate(location.origin, kind, username.value.trim(), password.value, deviceId());
      localStorage.setItem(TOKENS_KEY, JSON.stringify(r));
      auth = authSession(r);
      session = { userId: r.userId, username: r.username, deviceId: deviceId(), cursor: 0 };
      const previous = localStorage.getItem(STORE_KEY);
      if (previous) {
        const p = JSON.parse(previous) as Session;
        if (p.userId === r.userId) session.cursor = p.cursor;
      }
      saveSession();
      await start();
    } catch (err) {
      showErrorIn(error, err, {
        [ErrorCode.ERROR_CODE_UNAUTHENTICATED]: "Wrong username or password.",
        [ErrorCode.ERROR_CODE_ALREADY_EXISTS]: "That username is taken. Log in instead, or pick another name.",
        [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: "Usernames are 3 to 32 letters, digits, dots, dashes or underscores; passwords at least 8 characters.",
      });
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
  app.className = "centered";
  app.replaceChildren(form);
  username.focus();
}

// ------------------------------------------------------------------ chat view

function others(c: Conversation) {
  return c.members.filter((m) => m.userId !== session!.userId);
}

/** A member's name as shown: a deleted account has none any more. */
function nameOf(m: Member): string {
  return m.accountDeleted ? "Deleted account" : m.username;
}

function title(c: Conversation): string {
  if (c.kind === ConversationKind.CONVERSATION_KIND_GROUP) return c.title || "Group";
  return others(c).map(nameOf).join(", ") || session!.username;
}

/** Who is in a group, short: tells apart two groups of one name. */
function membersLine(c: Conversation): string {
  const names = ["you", ...others(c).map(nameOf)];
  return names.length > 4 ? `${names.slice(0, 3).join(", ")} +${names.length - 3}` : names.join(", ");
}

function peer(c: Conversation): string | undefined {
  if (c.kind !== ConversationKind.CONVERSATION_KIND_DIRECT) return undefined;
  return others(c)[0]?.userId;
}

/** A direct conversation with nobody else in it (made by older versions): not offered. */
function isSelfOnly(c: Conversation): boolean {
  return c.kind === ConversationKind.CONVERSATION_KIND_DIRECT && others(c).length === 0;
}

function unread(s: ConvState): number {
  return Math.max(0, s.conversation.lastSeq - s.myRead);
}

function lastAt(s: ConvState): number {
  return Math.max(s.conversation.createdAtMs, s.last?.sentAtMs ?? 0);
}

function upsert(c: Conversation): ConvState {
  let s = conversations.get(c.id);
  if (!s) {
    s = { conversation: c, messages: new Map(), last: undefined, oldestLoaded: 0, hasMoreHistory: true, receipts: new Map(), myRead: c.readSeq };
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

function remember(s: ConvState, m: Message): void {
  s.messages.set(m.seq, m);
  if (!s.last || m.seq > s.last.seq) s.last = m;
  s.conversation.lastSeq = Math.max(s.conversation.lastSeq, m.seq);
}

/** An initial in a coloured circle, the colour fixed by the conversation id. */
function avatar(c: Conversation): HTMLElement {
  let hash = 0;
  for (const ch of c.id) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const initial = Array.from(title(c))[0]?.toUpperCase() ?? "?";
  return h("span", { class: `avatar hue-${hash % 8}`, "aria-hidden": "true" }, initial);
}

function setNarrowView(view: "list" | "pane"): void {
  document.querySelector(".layout")?.setAttribute("data-view", view);
}

function closeConversation(): void {
  active = undefined;
  setNarrowView("list");
  renderList();
  document.querySelector<HTMLButtonElement>("[data-testid=conversation]")?.focus();
}

function renderShell(): void {
  const directInput = h("input", { id: "direct", placeholder: "username", autocomplete: "off", "aria-label": "Open a chat with username", "data-testid": "direct-username" });
  const directError = errorLine("direct-error");
  const directForm = h("form", { class: "inline", "data-testid": "open-direct" }, directInput, h("button", { type: "submit" }, "Chat"));
  directInput.addEventListener("input", () => clearError(directError));
  directForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = directInput.value.trim();
    if (!name) return;
    if (name.toLowerCase() === session!.username.toLowerCase()) {
      showMessageIn(directError, "That is you. Type the username of someone else to chat with.", "SELF");
      return;
    }
    client!.openDirect(name).then((c) => { upsert(c); directInput.value = ""; clearError(directError); open(c.id); }, (err) => showErrorIn(directError, err, {
      [ErrorCode.ERROR_CODE_NOT_FOUND]: `Nobody is called “${name}”. Check the spelling.`,
      [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: `“${name}” is not a valid username.`,
    }));
  });
  const groupTitle = h("input", { placeholder: "group name", "aria-label": "Group name", "data-testid": "group-title" });
  const groupMembers = h("input", { placeholder: "members: ana, bo", "aria-label": "Group members, separated by commas", "data-testid": "group-members" });
  const groupError = errorLine("group-error");
  for (const input of [groupTitle, groupMembers]) input.addEventListener("input", () => clearError(groupError));
  const groupForm = h("form", { class: "stack", "data-testid": "create-group" }, groupTitle, groupMembers, groupError, h("button", { type: "submit" }, "Create group"));
  const details = h("details", {}, h("summary", {}, "New group"), groupForm);
  groupForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const names = groupMembers.value.split(/[\s,]+/).filter(Boolean);
    client!.createGroup(groupTitle.value.trim(), names).then((c) => {
      upsert(c); groupTitle.value = ""; groupMembers.value = ""; clearError(groupError); details.open = false; open(c.id);
    }, (err) => showErrorIn(groupError, err, {
      [ErrorCode.ERROR_CODE_NOT_FOUND]: "One of those usernames does not exist. Check the spelling.",
      [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: "Give the group a name (up to 200 characters) and list members by username.",
    }));
  });
  const logout = h("button", { class: "link", "data-testid": "logout" }, "Log out");
  logout.addEventListener("click", () => {
    // The server ends the session first (its tokens stop working on every edge); the page forgets
    // it either way: a logout that could not reach the server still leaves nothing here to reuse.
    // This socket is closed first, so the SESSION_ENDED the edge sends it is not taken for a logout from elsewhere.
    const c = client;
    client = undefined;
    void c?.close();
    void (auth?.logout() ?? Promise.resolve()).catch(() => {}).finally(() => signedOut());
  });
  const header = h("header", { class: "me" }, h("strong", { "data-testid": "me" }, session!.username), logout);
  if ("Notification" in window && Notification.permission === "default") {
    const enable = h("button", { class: "link", "data-testid": "enable-notifications" }, "Notify me");
    enable.title = "Show a notification for new messages while this tab is in the background";
    enable.addEventListener("click", () => void Notification.requestPermission().then(() => enable.remove()));
    header.insertBefore(enable, logout);
  }
  const sidebar = h("aside", { class: "sidebar", "aria-label": "Conversations and new chats" },
    header,
    directForm,
    directError,
    details,
    h("nav", { "aria-label": "Conversations" }, h("ul", { id: "conversations", "data-testid": "conversations" })));
  const main = h("main", { class: "chat" },
    h("div", { class: "banner", id: "connection", "data-testid": "connection", hidden: "", role: "status", "aria-live": "polite" }),
    h("section", { id: "pane", class: "pane", "aria-label": "Conversation" }, h("p", { class: "empty" }, "Pick a conversation, or open one by username.")));
  const layout = h("div", { class: "layout", "data-view": "list" }, sidebar, main);
  // Escape steps back: closes the new-group form, or the conversation on a narrow screen.
  layout.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    if (details.open) { details.open = false; return; }
    if (active) closeConversation();
  });
  app.className = "";
  app.replaceChildren(layout);
  clearInterval(relativeTimer);
  relativeTimer = setInterval(() => { if (active) renderPane(); }, RELATIVE_REFRESH_MS);
}

function renderList(): void {
  const ul = document.getElementById("conversations");
  if (!ul) return;
  const items = [...conversations.values()].filter((s) => !isSelfOnly(s.conversation))
    .sort((a, b) => (lastAt(b) - lastAt(a)) || a.conversation.id.localeCompare(b.conversation.id));
  let total = 0;
  ul.replaceChildren(...items.map((s) => {
    const c = s.conversation;
    const p = peer(c);
    const online = p !== undefined && presence.get(p)?.status === PresenceStatus.PRESENCE_STATUS_ONLINE;
    const n = unread(s);
    total += n;
    const group = c.kind === ConversationKind.CONVERSATION_KIND_GROUP;
    const label = `${title(c)}${group ? `, group with ${membersLine(c)}` : online ? ", online" : ""}${n > 0 ? `, ${n} unread` : ""}`;
    const btn = h("button", { class: `conv ${c.id === active ? "active" : ""}`, "data-testid": "conversation", "data-title": title(c), "aria-label": label },
      avatar(c),
      h("span", { class: "lines" },
        h("span", { class: "title" }, title(c), p ? h("span", { class: `dot ${online ? "online" : "offline"}`, "aria-hidden": "true" }) : ""),
        group ? h("span", { class: "sub members", "data-testid": "members" }, membersLine(c)) : "",
        s.last ? h("span", { class: "sub", "data-testid": "preview" }, preview(s.last.text)) : ""));
    if (c.id === active) btn.setAttribute("aria-current", "true");
    if (n > 0) btn.append(h("span", { class: "badge", "data-testid": "unread", "aria-hidden": "true" }, String(n)));
    btn.addEventListener("click", () => open(c.id));
    return h("li", {}, btn);
  }));
  document.title = tabTitle(total);
}

function mark(s: ConvState, m: Message): string {
  if (m.senderId !== session!.userId) return "";
  const readers = [...s.receipts].filter(([u]) => u !== session!.userId).map(([, r]) => r);
  if (readers.some((r) => r.read >= m.seq)) return "read";
  if (readers.some((r) => r.delivered >= m.seq)) return "delivered";
  return "sent";
}

/** The message a reply names, as it is now (its latest text, or the tombstone). */
function quote(s: ConvState, m: Message): HTMLElement | string {
  if (!m.replyToSeq) return "";
  const q = s.messages.get(m.replyToSeq);
  const text = !q ? `#${m.replyToSeq}` : q.deleted ? "This message was deleted" : preview(q.text);
  return h("blockquote", { class: `quote${q?.deleted ? " deleted" : ""}`, "data-testid": "quote" }, text);
}

/** Edit (one's own) and delete (for me, or for everyone: one's own) on each message. */
function messageMenu(conversationId: string, m: Message, mine: boolean): HTMLElement | string {
  if (m.deleted) return "";
  const menu = h("span", { class: "msg-menu" });
  const failed = (err: unknown) => showConnection(err);
  if (mine) {
    const edit = h("button", { class: "link", "data-testid": "edit", "aria-label": "Edit this message" }, "Edit");
    edit.addEventListener("click", () => {
      const text = prompt("Edit message", m.text);
      if (text && text !== m.text) client?.edit(conversationId, m.seq, text).catch(failed);
    });
    menu.append(edit);
  }
  const reply = h("button", { class: "link", "data-testid": "reply", "aria-label": "Reply to this message" }, "Reply");
  reply.addEventListener("click", () => {
    const text = prompt(`Reply to: ${preview(m.text)}`);
    if (text) client?.reply(conversationId, m.seq, text).catch(failed);
  });
  menu.append(reply);
  const del = h("button", { class: "link", "data-testid": "delete", "aria-label": "Delete this message" }, "Delete");
  del.addEventListener("click", () => {
    const everyone = mine && confirm("Delete for everyone? (Cancel deletes it only for you.)");
    client?.deleteMessage(conversationId, m.seq, everyone).catch(failed);
  });
  menu.append(del);
  return menu;
}

function messageText(s: ConvState, m: Message): HTMLElement {
  if (m.deleted) return h("p", { class: "text deleted", "data-testid": "deleted" }, "This message was deleted");
  const text = h("p", { class: "text" }, m.text, m.editedAtMs ? h("span", { class: "edited", "data-testid": "edited", title: new Date(m.editedAtMs).toLocaleString() }, " (edited)") : "");
  if (!isLong(m.text)) return text;
  const key = `${s.conversation.id}:${m.seq}`;
  const open = expanded.has(key);
  if (!open) text.classList.add("collapsed");
  const toggle = h("button", { class: "link more", "data-testid": "show-more", "aria-expanded": String(open) }, open ? "Show less" : "Show more");
  toggle.addEventListener("click", () => {
    if (expanded.has(key)) expanded.delete(key); else expanded.add(key);
    renderPane();
  });
  return h("div", {}, text, toggle);
}

function statusLine(c: Conversation): string {
  const p = peer(c);
  if (!p) return `${c.members.length} members: ${membersLine(c)}`;
  if (others(c)[0]?.accountDeleted) return "this account was deleted";
  if (blocked.has(p)) return "blocked";
  const status = presence.get(p);
  if (status?.status === PresenceStatus.PRESENCE_STATUS_ONLINE) return "online";
  return status?.lastActiveAtMs ? `last seen ${relativeTime(status.lastActiveAtMs)}` : "offline";
}

let back: HTMLButtonElement | undefined;
/**
 * One back button for every render of the pane: the pane is rebuilt on each presence, typing or
 * receipt update, and a tap on a button replaced between its press and its release is lost (a
 * click needs both on one element); the same element, moved into the new header, keeps it.
 */
function backButton(): HTMLButtonElement {
  if (!back) {
    back = h("button", { class: "link back", "data-testid": "back", "aria-label": "Back to conversations" }, "‹");
    back.addEventListener("click", closeConversation);
  }
  return back;
}

function renderPane(): void {
  const pane = document.getElementById("pane");
  if (!pane) return;
  const s = active ? conversations.get(active) : undefined;
  if (!s) return;
  const c = s.conversation;
  const header = h("header", { class: "pane-header" },
    backButton(),
    h("div", { class: "heading" },
      h("h2", { "data-testid": "conversation-title" }, title(c)),
      h("span", { class: "presence", "data-testid": "presence" }, statusLine(c)),
      h("span", { class: "typing", "data-testid": "typing", "aria-live": "polite" }, typing?.label(c.id) ?? "")));
  if (c.kind === ConversationKind.CONVERSATION_KIND_GROUP) {
    const add = h("input", { placeholder: "add member", "aria-label": "Add a member by username", "data-testid": "add-member" });
    const addError = errorLine("add-error");
    add.addEventListener("input", () => clearError(addError));
    const form = h("form", { class: "inline add" }, add, h("button", { type: "submit" }, "Add"), addError);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const name = add.value.trim();
      if (!name) return;
      client!.addMember(c.id, name).then((cc) => { upsert(cc); add.value = ""; clearError(addError); renderPane(); }, (err) => showErrorIn(addError, err, {
        [ErrorCode.ERROR_CODE_NOT_FOUND]: `Nobody is called “${name}”.`,
        [ErrorCode.ERROR_CODE_ALREADY_EXISTS]: `${name} is already in this group.`,
      }));
    });
    header.append(form);
  }
  const blockButton = blockToggle(c);
  if (blockButton) header.append(blockButton);
  const list = h("ol", { class: "messages", "data-testid": "messages", role: "log", "aria-live": "polite", "aria-label": `Messages with ${title(c)}` });
  const sorted = [...s.messages.values()].sort((a, b) => a.seq - b.seq);
  // "Load older" only where older messages exist: not in an empty conversation.
  if (sorted.length > 0 && s.hasMoreHistory && s.oldestLoaded > 1) {
    const older = h("button", { class: "link older", "data-testid": "load-older" }, "Load older messages");
    older.addEventListener("click", () => void loadHistory(s, true));
    list.append(h("li", { class: "older-row" }, older));
  }
  if (sorted.length === 0 && !(s.hasMoreHistory && s.conversation.lastSeq > 0)) list.append(h("li", { class: "empty", "data-testid": "no-messages" }, "No messages yet. Say hello!"));
  const names = new Map(c.members.map((m) => [m.userId, nameOf(m)]));
  let previous: Message | undefined;
  for (const m of sorted) {
    if (!previous || differentDays(previous.sentAtMs, m.sentAtMs)) list.append(h("li", { class: "day", "data-testid": "day", role: "separator" }, dayLabel(m.sentAtMs)));
    previous = m;
    const mine = m.senderId === session!.userId;
    const state = mark(s, m);
    const who = mine ? "you" : (names.get(m.senderId) ?? "someone");
    list.append(h("li", { class: `msg ${mine ? "mine" : ""}`, "data-testid": "message", "data-seq": String(m.seq), "data-state": state, "aria-label": `${who} at ${timeOfDay(m.sentAtMs)}${state ? `, ${state}` : ""}` },
      // In a direct conversation the header already says who wrote.
      mine || c.kind !== ConversationKind.CONVERSATION_KIND_GROUP ? "" : h("span", { class: "who" }, who),
      quote(s, m),
      messageText(s, m),
      messageMenu(c.id, m, mine),
      h("span", { class: "meta" }, h("time", { datetime: new Date(m.sentAtMs).toISOString() }, timeOfDay(m.sentAtMs)), mine ? h("span", { class: `tick ${state}`, "data-testid": "mark", title: state, "aria-hidden": "true" }, state === "sent" ? "✓" : "✓✓") : "")));
  }
  // The composer survives re-renders (events arrive while the user types).
  if (pane.dataset.conversation === c.id) {
    const [oldHeader, oldList] = [pane.querySelector(".pane-header"), pane.querySelector(".messages")];
    const keep = oldList && oldList.scrollHeight - oldList.scrollTop - oldList.clientHeight < 40;
    // So does the add-member box: a presence update or receipt must not wipe what is being typed.
    const oldForm = oldHeader?.querySelector("form.inline");
    const newForm = header.querySelector("form.inline");
    // Moving the box out of the page takes its focus, and the next keys (Enter) went nowhere.
    const focused = oldForm?.contains(document.activeElement) ? (document.activeElement as HTMLInputElement) : null;
    const [start, end] = [focused?.selectionStart ?? null, focused?.selectionEnd ?? null];
    if (oldForm && newForm) newForm.replaceWith(oldForm);
    oldHeader?.replaceWith(header);
    if (focused) {
      focused.focus();
      if (start !== null && end !== null) focused.setSelectionRange(start, end);
    }
    oldList?.replaceWith(list);
    if (keep) list.scrollTop = list.scrollHeight;
    return;
  }
  const text = h("textarea", { rows: "2", placeholder: "Message (Enter to send, Shift+Enter for a new line)", "aria-label": "Message", "data-testid": "composer" });
  const sendError = errorLine("send-error");
  text.addEventListener("input", () => {
    clearError(sendError);
    // The client sends at most one indicator per interval, however fast the keys come.
    if (text.value) client?.typing(c.id).catch(() => {});
  });
  const composer = h("form", { class: "composer", "data-testid": "send-form" }, text, h("button", { type: "submit", "data-testid": "send" }, "Send"));
  const send = () => {
    const body = text.value;
    if (!body.trim()) return;
    text.value = "";
    client!.send(c.id, body).then((sent) => {
      clearError(sendError);
      // The event with the message arrives through the sync log; this covers a slow one.
      if (!s.messages.has(sent.seq)) remember(s, { conversationId: c.id, seq: sent.seq, senderId: session!.userId, senderDeviceId: session!.deviceId, clientMsgId: sent.clientMsgId, text: body, sentAtMs: sent.sentAtMs, editedAtMs: 0, deleted: false, replyToSeq: 0 });
      s.myRead = Math.max(s.myRead, sent.seq);
      renderPane();
      renderList();
    }, (err) => {
      if (!text.value) text.value = body;
      if (err instanceof ClientError && err.code === ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG) {
        showMessageIn(sendError, `This message is too long: ${Array.from(body).length.toLocaleString()} characters, and the limit is 100,000.`, "MESSAGE_TOO_LONG");
      } else {
        showErrorIn(sendError, err, {
          [ErrorCode.ERROR_CODE_PERMISSION_DENIED]: c.kind === ConversationKind.CONVERSATION_KIND_DIRECT
            ? (blocked.has(peer(c) ?? "") ? "You blocked this user. Unblock them to write." : "This conversation does not take your messages.")
            : "You are not allowed to do that here.",
        });
      }
    });
  };
  composer.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  text.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); } });
  pane.dataset.conversation = c.id;
  pane.replaceChildren(header, list, sendError, composer);
  list.scrollTop = list.scrollHeight;
}

async function loadHistory(s: ConvState, older: boolean): Promise<void> {
  try {
    const page = await client!.history(s.conversation.id, { direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, fromSeq: older ? s.oldestLoaded : 0, limit: 30 });
    for (const m of page.messages) remember(s, m);
    const oldest = page.messages[page.messages.length - 1]?.seq;
    if (oldest !== undefined && (s.oldestLoaded === 0 || oldest < s.oldestLoaded)) s.oldestLoaded = oldest;
    s.hasMoreHistory = page.hasMore;
    if (active === s.conversation.id) renderPane();
    renderList();
  } catch (err) {
    showConnection(err);
  }
}

function markRead(s: ConvState): void {
  const last = s.conversation.lastSeq;
  if (pageHidden() || last <= s.myRead) return;
  s.myRead = last;
  client?.markRead(s.conversation.id, last).catch(() => {});
  renderList();
}

function open(id: string): void {
  active = id;
  const s = conversations.get(id);
  if (!s) return;
  setNarrowView("pane");
  renderList();
  renderPane();
  if (s.oldestLoaded === 0) void loadHistory(s, false);
  markRead(s);
  document.querySelector<HTMLTextAreaElement>("[data-testid=composer]")?.focus();
}

/** The connection's state, in the banner above the conversation. */
function showConnection(errOrState: unknown): void {
  const banner = document.getElementById("connection");
  if (!banner) return;
  // A (re)connect attempt changes nothing on screen: "Reconnecting…" stays until it succeeds.
  if (errOrState === "connecting") return;
  clearTimeout(backOnlineTimer);
  if (errOrState === "open") {
    if (!wasOffline) { banner.hidden = true; return; }
    wasOffline = false;
    banner.className = "banner ok";
    banner.textContent = "Back online.";
    banner.hidden = false;
    backOnlineTimer = setTimeout(() => { banner.hidden = true; }, 3_000);
    return;
  }
  if (errOrState === "closed") {
    wasOffline = true;
    banner.className = "banner";
    banner.textContent = "Reconnecting… Messages you send will go out when the connection is back.";
    banner.hidden = false;
    return;
  }
  // While reconnecting, a call that failed for want of a connection says nothing new.
  if (wasOffline && errOrState instanceof ClientError && errOrState.retryable) return;
  banner.className = "banner error";
  showErrorIn(banner, errOrState);
}

/**
 * Block / Unblock in a direct conversation's header (docs/features.md, "Blocking a user"). The
 * other side is not told; they find their messages refused. Not offered for a deleted account.
 */
function blockToggle(c: Conversation): HTMLElement | undefined {
  const p = peer(c);
  const other = others(c)[0];
  if (!p || !other || other.accountDeleted) return undefined;
  const isBlocked = blocked.has(p);
  const button = h("button", { class: "link block", type: "button", "data-testid": "block-toggle" }, isBlocked ? "Unblock" : "Block");
  const error = errorLine("block-error");
  button.addEventListener("click", () => {
    if (!isBlocked && !window.confirm(`Block ${other.username}? They will not be able to write to you, and you will not see each other online or typing.`)) return;
    (isBlocked ? client!.unblock(other.username) : client!.block(other.username)).then(() => {
      if (isBlocked) blocked.delete(p);
      else blocked.add(p);
      renderPane();
    }, (err) => showErrorIn(error, err));
  });
  return h("span", { class: "block-row" }, button, error);
}

/** Who this account blocked, once per connection (another device may have changed it). */
async function loadBlocked(): Promise<void> {
  if (!client) return;
  const users = await client.listBlocked();
  blocked.clear();
  for (const u of users) blocked.add(u.userId);
}

/** A browser notification for a message that arrives while the tab is in the background. */
function notify(s: ConvState, m: Message): void {
  if (!pageHidden() || m.senderId === session!.userId || !("Notification" in window) || Notification.permission !== "granted" || s.conversation.muted) return;
  const member = s.conversation.members.find((x) => x.userId === m.senderId);
  const sender = member ? nameOf(member) : "someone";
  const group = s.conversation.kind === ConversationKind.CONVERSATION_KIND_GROUP;
  const n = new Notification(group ? `${sender} in ${title(s.conversation)}` : sender, { body: preview(m.text, 140), tag: s.conversation.id });
  n.onclick = () => { window.focus(); open(s.conversation.id); n.close(); };
}

async function start(): Promise<void> {
  renderShell();
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  client = new ChatClient({
    url: wsUrl,
    auth: auth!,
    deviceId: session!.deviceId,
    cursor: session!.cursor,
    socket: (url, protocols) => new WebSocket(url, protocols) as unknown as SocketLike,
  });
  client.on("cursor", (pos) => { session!.cursor = pos; saveSession(); });
  // Logged out elsewhere, password changed, or the refresh token reused: the edge closes with SESSION_ENDED.
  const mine = client;
  client.on("error", (e) => { if (client === mine && sessionOver(e)) signedOut(e); });
  // Refreshed ahead of expiry, so a reconnect never waits for a refresh and the session's 30 days keep sliding.
  clearInterval(tokenTimer);
  tokenTimer = setInterval(() => { auth?.accessToken().catch((err: unknown) => { if (sessionOver(err)) signedOut(err); }); }, TOKEN_CHECK_MS);
  typing = new TypingIndicators(client, (conversationId) => { if (active === conversationId) renderPane(); });
  // The edge found our cursor beyond the log (a corrupted or foreign one), or older than the log
  // keeps (a device away for months): start over from the directory and history, as a new device.
  client.on("reset", () => {
    for (const s of conversations.values()) { s.messages.clear(); s.last = undefined; s.oldestLoaded = 0; s.hasMoreHistory = true; }
    const s = active ? conversations.get(active) : undefined;
    if (s) void loadHistory(s, false);
    void refreshConversations();
  });
  client.on("state", (st) => {
    showConnection(st);
    if (st === "open") void refreshConversations();
  });
  client.on("message", (m) => {
    const s = conversations.get(m.conversationId);
    if (!s) { void refreshConversations(); return; }
    remember(s, m);
    if (m.senderId === session!.userId) s.myRead = Math.max(s.myRead, m.seq);
    else notify(s, m);
    if (active === m.conversationId) { renderPane(); markRead(s); }
    renderList();
  });
  client.on("membership", (mc) => {
    if (mc.conversation) upsert(mc.conversation);
    void subscribePresence();
    renderList();
    if (active === mc.conversationId) renderPane();
  });
  client.on("edited", (e) => {
    const s = conversations.get(e.conversationId);
    const m = s?.messages.get(e.seq);
    if (!s || !m || m.deleted) return;
    s.messages.set(e.seq, { ...m, text: e.text, editedAtMs: e.editedAtMs });
    if (s.last?.seq === e.seq) s.last = s.messages.get(e.seq);
    renderList();
    if (active === e.conversationId) renderPane();
  });
  client.on("deleted", (d) => {
    const s = conversations.get(d.conversationId);
    if (!s) return;
    const m = s.messages.get(d.seq);
    // For me: gone from this user's screens; for everyone: a tombstone in its place.
    if (!d.forEveryone) s.messages.delete(d.seq);
    else if (m) s.messages.set(d.seq, { ...m, text: "", deleted: true });
    // The list's preview must not keep a deleted text.
    if (s.last?.seq === d.seq) s.last = d.forEveryone ? s.messages.get(d.seq) : undefined;
    if (active === d.conversationId) renderPane();
    renderList();
  });
  client.on("read", (r) => {
    const s = conversations.get(r.conversationId);
    if (s) { s.myRead = Math.max(s.myRead, r.readSeq); renderList(); }
  });
  client.on("receipt", (r) => {
    const s = conversations.get(r.conversationId);
    if (!s) return;
    // Pointers only move forward: a receipt that arrives late never takes one back.
    const was = s.receipts.get(r.userId) ?? { delivered: 0, read: 0 };
    s.receipts.set(r.userId, { delivered: Math.max(was.delivered, r.deliveredSeq), read: Math.max(was.read, r.readSeq) });
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
    if (sessionOver(err)) { signedOut(err); return; }
    showConnection(err);
  }
}

async function refreshConversations(): Promise<void> {
  if (!client) return;
  try {
    for (const c of await client.listConversations()) upsert(c);
    await loadBlocked();
    renderList();
    if (active) renderPane();
    await Promise.all([subscribePresence(), loadPreviews()]);
  } catch (err) {
    showConnection(err);
  }
}

/** The newest message of each conversation not yet seen: the list's preview and order. */
async function loadPreviews(): Promise<void> {
  const missing = [...conversations.values()].filter((s) => !s.last && s.conversation.lastSeq > 0).slice(0, 100);
  await Promise.all(missing.map(async (s) => {
    const page = await client!.history(s.conversation.id, { direction: HistoryDirection.HISTORY_DIRECTION_BACKWARD, fromSeq: 0, limit: 1 }).catch(() => undefined);
    const m = page?.messages[0];
    if (m && (!s.last || m.seq > s.last.seq)) s.last = m;
  }));
  if (missing.length > 0) renderList();
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
const tokens = storedTokens();
if (saved && tokens) {
  session = JSON.parse(saved) as Session;
  auth = authSession(tokens);
  void start();
} else {
  // Nothing saved, or a session of before refresh tokens (its 7-day token is refused now): log in.
  renderAuth();
}
