import { describe, expect, it } from "vitest";
import { StatementNames } from "./sql-postgres.js";

describe("StatementNames", () => {
  it("names each text once and for good, up to the bound; past it, and once forgotten, a text runs unprepared", () => {
    const names = new StatementNames(2);
    const a = names.nameOf("SELECT 1 WHERE $1");
    expect(a).toBeDefined();
    expect(names.nameOf("SELECT 1 WHERE $1")).toBe(a);
    const b = names.nameOf("SELECT 2 WHERE $1");
    expect(b).not.toBe(a);
    expect(names.nameOf("SELECT 3 WHERE $1")).toBeUndefined();
    names.forget("SELECT 1 WHERE $1");
    expect(names.nameOf("SELECT 1 WHERE $1")).toBeUndefined();
    // A forgotten name is never given to another text: a connection may still hold it.
    expect(names.nameOf("SELECT 2 WHERE $1")).toBe(b);
    expect(names.nameOf("SELECT 4 WHERE $1")).toBeUndefined();
  });
});
