import { ChatError, ErrorCode } from "../errors/chat-error.js";

const USERNAME = /^[a-z0-9][a-z0-9_.-]{2,31}$/;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_MSG_ID = /^[\x21-\x7e]{1,64}$/;
const CONVERSATION_ID = /^(d:[0-9a-f-]{36}:[0-9a-f-]{36}|g:[0-9a-f-]{36})$/;

/**
 * C0 control characters other than tab, line feed and carriage return, and DEL.
 * Refused in texts and titles: they render as nothing or as terminal commands, and
 * U+0000 cannot be stored in PostgreSQL text at all (it used to fail a whole batch,
 * other users' messages included).
 */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

function refuseControls(field: string, text: string): void {
  const m = CONTROL.exec(text);
  if (m) throw ChatError.invalid(`${field} contains the control character U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")} at position ${m.index}; only tab, line feed and carriage return are allowed`);
}

/** Length in Unicode code points (what R3 limits), without allocating. */
export function codePointLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

export function validateUsername(username: string): void {
  if (!USERNAME.test(username)) throw ChatError.invalid("username must be 3-32 characters of a-z, 0-9, _ . - starting with a letter or digit");
}

export function validatePassword(password: string): void {
  if (password.length < 8 || password.length > 256) throw ChatError.invalid("password must be 8-256 characters");
}

export function validateDeviceId(deviceId: string): void {
  if (!DEVICE_ID.test(deviceId)) throw ChatError.invalid("device_id must be 1-64 characters of A-Z, a-z, 0-9, _ -");
}

export function validateConversationId(id: string): void {
  if (!CONVERSATION_ID.test(id)) throw ChatError.invalid("malformed conversation_id");
}

export function validateTitle(title: string): void {
  if (codePointLength(title) > 200) throw ChatError.invalid("title is at most 200 characters");
  refuseControls("title", title);
}

export function validateSend(s: { conversationId: string; clientMsgId: string; text: string }, maxTextLength: number): void {
  validateSendAddress(s);
  validateText(s.text, maxTextLength);
}

/**
 * A send's ids and a text that is not empty: what is checked before the sender's limits, which
 * come before the text's full check (a walk of up to 200,000 UTF-16 units), so a send that the
 * limits refuse costs the edge no walk of its text.
 */
export function validateSendAddress(s: { conversationId: string; clientMsgId: string; text: string }): void {
  validateConversationId(s.conversationId);
  if (!CLIENT_MSG_ID.test(s.clientMsgId)) throw ChatError.invalid("client_msg_id must be 1-64 printable ASCII characters");
  if (s.text.length === 0) throw ChatError.invalid("text is empty");
}

/** An edit, a delete or a reply names a message of a conversation by its seq. */
export function validateMessageRef(r: { conversationId: string; seq: number }): void {
  validateConversationId(r.conversationId);
  if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw ChatError.invalid("seq must name a message (1 or more)");
}

/** A message's text (sent or edited): not empty, at most maxTextLength code points, no control characters. */
export function validateText(text: string, maxTextLength: number): void {
  const s = { text };
  if (s.text.length === 0) throw ChatError.invalid("text is empty");
  // UTF-16 length is >= code points and at most twice them: only count when it could go either way.
  if (s.text.length > maxTextLength && (s.text.length > 2 * maxTextLength || codePointLength(s.text) > maxTextLength)) {
    throw new ChatError(ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG, `text is longer than ${maxTextLength} characters`);
  }
  refuseControls("text", s.text);
}
