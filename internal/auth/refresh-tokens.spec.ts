import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newRefreshToken, parseRefreshToken } from "./refresh-tokens.js";

describe("refresh tokens", () => {
  it("name their session and parse back to the same hash", () => {
    const sid = randomUUID();
    const t = newRefreshToken(sid);
    const parsed = parseRefreshToken(t.token)!;
    expect(parsed.sessionId).toBe(sid);
    expect(parsed.hash.equals(t.hash)).toBe(true);
    expect(newRefreshToken(sid).token).not.toBe(t.token);
  });

  it("refuse anything that cannot be one", () => {
    const sid = randomUUID();
    for (const bad of ["", "x", `${sid}`, `${sid}.short`, `${sid}.${"a".repeat(43)}.extra`, `not-a-session.${"a".repeat(43)}`]) expect(parseRefreshToken(bad)).toBeNull();
  });
});
