/**
 * The most of a message's text a push may show (PUSH_PREVIEW_LENGTH's bound): APNs and FCM
 * take 4 KB of payload, which 1,000 code points of up to 4 bytes already fill.
 */
export const PUSH_PREVIEW_MAX = 1_000;

/**
 * `text` cut to `max` code points (never splitting a surrogate pair) with "…" when cut;
 * runs of white space become one space. Cutting again to a smaller `max` gives what one cut
 * to that `max` gives, so chat cuts every text to PUSH_PREVIEW_MAX before it reaches the
 * notifier (a 100,000-character message is not carried whole to be shown as 120), and the
 * notifier cuts to its PUSH_PREVIEW_LENGTH.
 */
export function preview(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  let cut = 0;
  let count = 0;
  for (const ch of flat) {
    if (count === max) return flat.slice(0, cut) + "…";
    cut += ch.length;
    count++;
  }
  return flat;
}
