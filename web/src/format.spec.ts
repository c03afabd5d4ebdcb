import { describe, expect, it } from "vitest";
import { dayLabel, differentDays, isLong, preview, relativeTime, tabTitle, timeOfDay } from "./format.js";

const at = (y: number, mo: number, d: number, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();

describe("time shown to people", () => {
  const now = at(2026, 12, 5, 15, 30);
  it("says how long ago, relative where it helps", () => {
    expect(relativeTime(now - 20_000, now)).toBe("just now");
    expect(relativeTime(now - 3 * 60_000, now)).toBe("3 min ago");
    expect(relativeTime(now - 2 * 3_600_000, now)).toBe("2 h ago");
    expect(relativeTime(at(2026, 12, 4, 9, 5), now)).toBe(`yesterday at ${timeOfDay(at(2026, 12, 4, 9, 5))}`);
    expect(relativeTime(at(2026, 12, 1, 9, 5), now)).toMatch(/ at /);
  });
  it("labels days for separators and puts one between two days", () => {
    expect(dayLabel(at(2026, 12, 5, 1), now)).toBe("Today");
    expect(dayLabel(at(2026, 12, 4, 23, 59), now)).toBe("Yesterday");
    expect(dayLabel(at(2026, 11, 20), now)).not.toMatch(/Today|Yesterday/);
    expect(differentDays(at(2026, 12, 4, 23, 59), at(2026, 12, 5, 0, 1))).toBe(true);
    expect(differentDays(at(2026, 12, 5, 0, 1), at(2026, 12, 5, 23, 59))).toBe(false);
  });
});

describe("text shown to people", () => {
  it("collapses long messages by characters or by lines", () => {
    expect(isLong("x".repeat(1_500))).toBe(false);
    expect(isLong("x".repeat(1_501))).toBe(true);
    expect(isLong("a\n".repeat(14) + "a")).toBe(false);
    expect(isLong("a\n".repeat(15) + "a")).toBe(true);
  });
  it("folds a preview to one line and cuts it by code points", () => {
    expect(preview("hi\n\n  there")).toBe("hi there");
    expect(preview("😀".repeat(100), 3)).toBe("😀😀😀…");
  });
  it("puts the unread count first in the tab title", () => {
    expect(tabTitle(0)).toBe("meshchat");
    expect(tabTitle(3)).toBe("(3) meshchat");
    expect(tabTitle(250)).toBe("(99+) meshchat");
  });
});
