import { describe, expect, it } from "vitest";
import { replicationOf } from "./schema-cassandra.js";
import { MAX_MESSAGE_BYTES, MESSAGES_PER_BUCKET, PARTITION_BYTES_MAX } from "./store-cassandra.js";

describe("replicationOf (CASSANDRA_REPLICATION)", () => {
  it("reads a factor as SimpleStrategy and data centres as NetworkTopologyStrategy", () => {
    expect(replicationOf("1")).toBe("{'class': 'SimpleStrategy', 'replication_factor': 1}");
    expect(replicationOf("dc1:3, dc2:3")).toBe("{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3}");
  });

  it("refuses what would be a bad keyspace, or CQL put into it", () => {
    for (const bad of ["", "0", "three", "dc1", "dc1:0", "dc1:3,", "dc1:3}; DROP KEYSPACE x", "dc'1:3"]) {
      expect(() => replicationOf(bad), bad).toThrow(/CASSANDRA_REPLICATION/);
    }
  });
});

describe("message partitions", () => {
  it("stay under Cassandra's partition size guidance when every message is the largest legal one", () => {
    expect(MESSAGES_PER_BUCKET * MAX_MESSAGE_BYTES).toBeLessThanOrEqual(PARTITION_BYTES_MAX);
    // The largest legal text, 100,000 code points of 4 UTF-8 bytes each.
    expect(Buffer.byteLength("😀".repeat(100_000))).toBe(MAX_MESSAGE_BYTES);
  });
});
