import { describe, expect, it } from "vitest";
import { logContinuity } from "./store.js";

describe("logContinuity: what a page read after a position may hand out (docs/sync-log-trim.md)", () => {
  it("a whole run is handed out as it is", () => {
    expect(logContinuity(3, 9, [4, 5, 6])).toEqual({ take: 3 });
    expect(logContinuity(9, 9, [])).toEqual({ take: 0 });
    // Rows past the head read first are later commits, not a gap.
    expect(logContinuity(9, 9, [10, 11])).toEqual({ take: 2 });
  });

  it("a missing prefix is trimmed up to the first row, or to the head when no row is left", () => {
    expect(logContinuity(3, 9, [7, 8, 9])).toEqual({ trimmedTo: 6 });
    expect(logContinuity(0, 9, [])).toEqual({ trimmedTo: 9 });
  });

  it("a hole further on cuts the page before it, so the next read starts there and reports it", () => {
    expect(logContinuity(3, 20, [4, 5, 9, 10])).toEqual({ take: 2 });
    expect(logContinuity(5, 20, [9, 10])).toEqual({ trimmedTo: 8 });
  });
});
