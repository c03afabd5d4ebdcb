import { describe, expect, it } from "vitest";
import { printable } from "./printable.js";

describe("printable", () => {
  it("shows control characters instead of letting the terminal obey them", () => {
    expect(printable("\u001b[2J\u001b]0;owned\u0007hi")).toBe("\\x1b[2J\\x1b]0;owned\\x07hi");
    expect(printable("c1 \u009b31m")).toBe("c1 \\x9b31m");
    expect(printable("two\nlines\tand 😀")).toBe("two\nlines\tand 😀");
  });
});
