// Time and text shown to people: one clock format everywhere, relative where it helps.

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndDate = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const fullDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The time of day a message was sent, as on every bubble. */
export function timeOfDay(ms: number): string {
  return clock.format(ms);
}

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** Whole local days from `ms` to `now` (0 = same day). */
function daysBefore(ms: number, now: number): number {
  return Math.round((startOfDay(now) - startOfDay(ms)) / (24 * HOUR));
}

/** A day separator in the history: "Today", "Yesterday", "Mon 3 Dec", or a full date past a year. */
export function dayLabel(ms: number, now = Date.now()): string {
  const days = daysBefore(ms, now);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 300) return dayAndDate.format(ms);
  return fullDate.format(ms);
}

/** True when two instants fall on different local days (a separator goes between them). */
export function differentDays(a: number, b: number): boolean {
  return startOfDay(a) !== startOfDay(b);
}

/** "just now", "3 min ago", "2 h ago", "yesterday at 14:05", "Mon 3 Dec at 09:10". */
export function relativeTime(ms: number, now = Date.now()): string {
  const ago = Math.max(0, now - ms);
  if (ago < MINUTE) return "just now";
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)} min ago`;
  const days = daysBefore(ms, now);
  if (days === 0) return `${Math.floor(ago / HOUR)} h ago`;
  if (days === 1) return `yesterday at ${timeOfDay(ms)}`;
  return `${dayLabel(ms, now)} at ${timeOfDay(ms)}`;
}

/** Past this many characters or lines a message is shown collapsed, with "Show more". */
export const COLLAPSE_CHARS = 1_500;
export const COLLAPSE_LINES = 15;

export function isLong(text: string): boolean {
  if (text.length > COLLAPSE_CHARS) return true;
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) if (++lines > COLLAPSE_LINES) return true;
  return false;
}

/** One line for the conversation list: whitespace folded, cut at `max` code points. */
export function preview(text: string, max = 80): string {
  const folded = text.replace(/\s+/g, " ").trim();
  const points = Array.from(folded);
  return points.length > max ? points.slice(0, max).join("") + "…" : folded;
}

/** The tab title: the unread count first, so it shows in a crowded tab bar. */
export function tabTitle(unread: number): string {
  return unread > 0 ? `(${unread > 99 ? "99+" : unread}) meshchat` : "meshchat";
}
