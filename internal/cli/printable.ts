/**
 * Message text as a terminal should show it: C0 and C1 control characters (ESC
 * above all, which starts terminal commands) written as visible \xNN escapes, never
 * obeyed. Line feed and tab stay: a message may have lines.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
