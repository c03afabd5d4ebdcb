import type { EventEmitter } from "node:events";

/**
 * How far a leader's rate of time may run from etcd's. Clocks of servers under NTP drift by
 * tens of parts per million; 5% covers a badly skewed VM with a wide margin.
 */
export const MAX_CLOCK_RATE_DRIFT = 0.05;

/**
 * Until when an elected process still holds its etcd lease for sure, from the lease's keepalives:
 * a keepalive answered with TTL t, and sent no earlier than time f (the "fired" event comes before
 * the request is written), means etcd lets the lease lapse no earlier than f + t on etcd's clock;
 * on ours that is at least f + t·(1 − drift). Until then no other candidate can have been elected,
 * since etcd deletes the leader's key only when the lease lapses (or when it resigns, which calls
 * `release()` first).
 *
 * Answers are matched to the oldest request still unanswered: should an answer ever be missing,
 * the next one is credited to an earlier request, so the time only comes out earlier (safe).
 * Once a keepalive stream breaks, it vouches for nothing any more (see the constructor).
 */
export class LeaseHolding {
  private readonly fired: number[] = [];
  private until = 0;
  private released = false;

  constructor(lease: EventEmitter, private readonly now: () => number = () => performance.now()) {
    lease.on("keepaliveFired", () => this.fired.push(this.now()));
    lease.on("keepaliveSucceeded", (res: { TTL?: string | number }) => {
      const sent = this.fired.shift();
      const ttl = Number(res?.TTL);
      if (sent === undefined || !(ttl > 0) || this.released) return;
      this.until = Math.max(this.until, sent + ttl * 1000 * (1 - MAX_CLOCK_RATE_DRIFT));
    });
    // A broken keepalive stream may still deliver an answer after the next stream's request has
    // fired (etcd3 ends the old stream but keeps listening to it), and the answer does not say which
    // request it is for: credited to the new one, it would vouch for a lapse later than etcd's. So
    // after a break nothing is vouched for again: the log reads its fence every tick, as without a lease.
    lease.on("keepaliveFailed", () => this.release());
    lease.on("lost", () => this.release());
  }

  /** A `now()` time before which no other process can hold the election (0: none vouched for). */
  heldUntil(): number {
    return this.until;
  }

  /** Vouches for nothing from now on: called before resigning, and when the lease is lost. */
  release(): void {
    this.released = true;
    this.until = 0;
    this.fired.length = 0;
  }
}
