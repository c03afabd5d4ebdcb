import { describe, expect, it } from "vitest";
import { requestKind, statementName } from "./cassandra-requests.js";

describe("requestKind", () => {
  it("tells reads, plain writes, Paxos rounds, batches and schema apart", () => {
    expect(requestKind("SELECT last_seq FROM ks.conversation_heads WHERE conversation_id = ?")).toBe("read");
    expect(requestKind("INSERT INTO ks.messages (conversation_id, bucket, seq) VALUES (?, ?, ?)")).toBe("write");
    expect(requestKind("UPDATE ks.log_heads USING TIMESTAMP ? SET head = ? WHERE user_id = ?")).toBe("write");
    expect(requestKind("INSERT INTO ks.sync_log (user_id, bucket, pos) VALUES (?, ?, ?) IF NOT EXISTS")).toBe("lwt");
    expect(requestKind("UPDATE ks.conversation_heads SET last_seq = ?, pending = ? WHERE conversation_id = ? IF last_seq = ? AND pending = null")).toBe("lwt");
    expect(requestKind("DELETE FROM ks.pointers WHERE conversation_id = ? AND user_id = ? IF EXISTS")).toBe("lwt");
    expect(requestKind(["INSERT INTO ks.a (k) VALUES (?)", { query: "INSERT INTO ks.b (k) VALUES (?)" }])).toBe("batch");
    expect(requestKind([{ query: "INSERT INTO ks.sync_log (user_id) VALUES (?) IF NOT EXISTS" }])).toBe("lwt_batch");
    expect(requestKind("CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)")).toBe("schema");
  });
});

describe("statementName", () => {
  it("names the verb and the table, without the keyspace", () => {
    expect(statementName("SELECT seq FROM ks.message_ids WHERE conversation_id = ?")).toBe("select message_ids");
    expect(statementName("INSERT INTO ks.sync_log (user_id, bucket, pos) VALUES (?, ?, ?) USING TTL ?")).toBe("insert sync_log");
    expect(statementName("UPDATE ks.log_heads USING TIMESTAMP ? SET head = ? WHERE user_id = ?")).toBe("update log_heads");
    expect(statementName("DELETE FROM pointers WHERE conversation_id = ?")).toBe("delete pointers");
    expect(statementName("CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)")).toBe("create t");
  });
});
