import { describe, expect, it } from "vitest";
import { parseDirectoryChange, type DirectoryChange } from "./directory-signals.js";

describe("parseDirectoryChange", () => {
  it("reads back every kind of change as sent", () => {
    const changes: DirectoryChange[] = [
      { kind: "conversation", conversationId: "g:1" },
      { kind: "contacts", userIds: ["u1", "u2"] },
      { kind: "privacy", userId: "u3" },
    ];
    for (const c of changes) expect(parseDirectoryChange(JSON.stringify(c))).toEqual(c);
  });

  it("ignores what it does not know: another kind, a missing field, not JSON", () => {
    for (const text of ['{"kind":"rename","conversationId":"g:1"}', '{"kind":"contacts","userIds":[1]}', '{"kind":"privacy"}', "g:1", "null"]) {
      expect(parseDirectoryChange(text)).toBeUndefined();
    }
  });
});
