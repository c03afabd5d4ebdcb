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

  it("drops the requests of a broken stream, and vouches for nothing once released or lost", () => {
    const { lease, holding, at } = setup();
    at(2_000);
    lease.emit("keepaliveFired");
    lease.emit("keepaliveFailed", new Error("stream broke"));
    at(9_000);
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    // The answer of the new stream's first request, which was never seen fired: not credited.
    expect(holding.heldUntil()).toBe(0);
    lease.emit("keepaliveFired");
    lease.emit("keepaliveSucceeded", { TTL: "5" });
    expect(holding.heldUntil()).toBeGreaterThan(9_000);
    holding.release();
    expect(holding.heldUntil()).toBe(0);
    // For good: a keepalive still answered after the release (a resign in progress) vouches for nothing.
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
