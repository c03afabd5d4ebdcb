import cassandra from "cassandra-driver";
import { describe, expect, it } from "vitest";
import { BATCH_MAX_BYTES, BATCH_MAX_STATEMENTS, estimatedBytes, groupForBatches, timestamped, timestampedForm } from "./cassandra-batches.js";

const ts = cassandra.types.Long.fromNumber(2 ** 52 + 7);

describe("timestamped statements", () => {
  it("puts the timestamp where each shape of write takes it", () => {
    expect(timestamped({ query: "INSERT INTO ks.t (a, b) VALUES (?, ?)", params: [1, 2] }, ts))
      .toEqual({ query: "INSERT INTO ks.t (a, b) VALUES (?, ?) USING TIMESTAMP ?", params: [1, 2, ts] });
    expect(timestamped({ query: "INSERT INTO ks.sync_log (a) VALUES (?) USING TTL ?", params: ["x", 60] }, ts))
      .toEqual({ query: "INSERT INTO ks.sync_log (a) VALUES (?) USING TTL ? AND TIMESTAMP ?", params: ["x", 60, ts] });
    expect(timestamped({ query: "UPDATE ks.pointers SET delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ?", params: [3, 2, "c", "u"] }, ts))
      .toEqual({ query: "UPDATE ks.pointers USING TIMESTAMP ? SET delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ?", params: [ts, 3, 2, "c", "u"] });
    expect(timestamped({ query: "DELETE FROM ks.pointers WHERE conversation_id = ? AND user_id = ?", params: ["c", "u"] }, ts))
      .toEqual({ query: "DELETE FROM ks.pointers USING TIMESTAMP ? WHERE conversation_id = ? AND user_id = ?", params: [ts, "c", "u"] });
  });

  it("refuses shapes it cannot place a timestamp in, and conditional writes", () => {
    expect(() => timestampedForm("SELECT * FROM ks.t")).toThrow(/no timestamped form/);
    expect(() => timestampedForm("INSERT INTO ks.t (a) VALUES (?) IF NOT EXISTS")).toThrow();
    expect(() => timestampedForm("UPDATE ks.t SET a = ? WHERE k = ? IF a = ?")).toThrow(/conditional/);
  });
});

describe("grouping a tick's writes into batches", () => {
  const small = (i: number) => ({ query: "INSERT INTO ks.t (a, b) VALUES (?, ?)", params: [`k${i}`, i] });

  it("keeps the order, and at most BATCH_MAX_STATEMENTS statements a batch", () => {
    const statements = Array.from({ length: 25 }, (_, i) => small(i));
    const groups = groupForBatches(statements);
    expect(groups.map((g) => g.length)).toEqual([BATCH_MAX_STATEMENTS, BATCH_MAX_STATEMENTS, 5]);
    expect(groups.flat()).toEqual(statements);
  });

  it("closes a batch before it passes BATCH_MAX_BYTES, and sends a larger statement alone", () => {
    const text = (n: number) => ({ query: "INSERT INTO ks.messages (a, body) VALUES (?, ?)", params: ["c", "x".repeat(n)] });
    const statements = [small(1), text(1_000), text(1_000), small(2), text(100_000), small(3)];
    const groups = groupForBatches(statements);
    for (const g of groups) if (g.length > 1) expect(g.reduce((n, s) => n + estimatedBytes(s.params), 0)).toBeLessThanOrEqual(BATCH_MAX_BYTES);
    expect(groups.find((g) => g.includes(statements[4]!))).toEqual([statements[4]]);
    expect(groups.flat()).toEqual(statements);
  });
});
