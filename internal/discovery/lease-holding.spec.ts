import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { LeaseHolding, MAX_CLOCK_RATE_DRIFT } from "./lease-holding.js";

function setup() {
  let t = 1_000;
  const lease = new EventEmitter();
  const holding = new LeaseHolding(lease, () => t);
  return { lease, holding, at: (ms: number) => { t = ms; } };
}

describe("LeaseHolding", () => {
  it("vouches for nothing before a keepalive is answered", () => {
    const { lease, holding } = setup();
    expect(holding.heldUntil()).toBe(0);
    lease.emit("keepaliveFired");
    expect(holding.heldUntil()).toBe(0);
  });

  it("counts the TTL from when the keepalive was sent, less the clock drift", () => {
    const { lease, holding, at } = setup();
    at(2_000);
    lease.emit("keepaliveFired");
    at(2_400);
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBe(2_000 + 5_000 * (1 - MAX_CLOCK_RATE_DRIFT));
  });

  it("credits an answer to the oldest request still open, so a missing answer can only make the time earlier", () => {
    const { lease, holding, at } = setup();
    at(2_000);
    lease.emit("keepaliveFired");
    at(3_000);
    lease.emit("keepaliveFired");
    at(3_100);
    // One answer for two requests: credited to the one sent at 2,000.
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBe(2_000 + 5_000 * (1 - MAX_CLOCK_RATE_DRIFT));
  });

  it("vouches for nothing once a keepalive stream broke: a late answer of the old stream cannot be told from the new one's", async () => {
    const { lease, holding, at } = setup();
    at(2_000);
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBeGreaterThan(2_000);
    at(3_000);
    lease.emit("keepaliveFired");
    lease.emit("keepaliveFailed", new Error("stream broke"));
    expect(holding.heldUntil()).toBe(0);
    // The next stream's request, and an answer that may be the old stream's late one.
    at(9_000);
    lease.emit("keepaliveEstablished");
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBe(0);
  });

  it("vouches for nothing from a release on, though keepalives are still answered (a resign in progress)", () => {
    const { lease, holding } = setup();
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBeGreaterThan(0);
    holding.release();
    expect(holding.heldUntil()).toBe(0);
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBe(0);
  });

  it("vouches for nothing once the lease is lost", () => {
    const { lease, holding } = setup();
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBeGreaterThan(0);
    lease.emit("lost", new Error("expired"));
    expect(holding.heldUntil()).toBe(0);
  });

  it("ignores an answer that says the lease is gone", () => {
    const { lease, holding } = setup();
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "0" });
    expect(holding.heldUntil()).toBe(0);
  });
});
