import { randomInt } from "node:crypto";
import { trimOldest } from "../run/trim-oldest.js";

/** Users whose version is kept apart from the floor; past it the oldest go (and the floor moves). */
const MAX_USERS = 1_000_000;

/** The last epoch this process gave out: a keeper made again in the same millisecond (a new leadership) still differs. */
let lastEpoch = 0;

/**
 * Per user, a number that moves whenever a device of the user connects or disconnects, kept by
 * the one process that commits every write of the user's sync log (docs/performance.md, "The
 * route cache"). The store answers a message's members' versions with its append, and chat
 * reuses the routes it fetched under the same (epoch, version) instead of asking presence again.
 *
 * Exact because of two orders, both in this process:
 * - a device's catch-up raises its user's version *before* reading the log head (the edge starts
 *   it only once presence has the device's route), and
 * - an append's answer reads the versions *after* its write is committed (visible to that read).
 * So for a message M and a device D: if D's raise came before M's answer, chat sees the version
 * move and fetches routes that include D; if after, D's catch-up read a head that has M.
 *
 * `epoch` tells one keeper from another (a restart, a new leader of the Cassandra log): a version
 * is only ever compared with one of the same epoch. Users not kept apart share `floor`; dropping
 * users at the bound raises the floor, which moves every one of them at once (a refetch each).
 */
export class RouteVersions {
  readonly epoch: number;
  private next = 1;
  private floor = 0;
  private readonly versions = new Map<string, number>();

  constructor(private readonly maxUsers = MAX_USERS) {
    // Milliseconds since 1970 times 1024, plus a random tie-break: distinct across restarts and
    // leaders (which start one after another), and within 2^53.
    this.epoch = lastEpoch = Math.max(Date.now() * 1024 + randomInt(1024), lastEpoch + 1);
  }

  /** A device of each of these users connected (before its catch-up reads) or disconnected. */
  raise(userIds: Iterable<string>): void {
    for (const u of userIds) {
      this.versions.delete(u);
      this.versions.set(u, this.next++);
    }
    if (this.versions.size > this.maxUsers) {
      this.floor = this.next++;
      trimOldest(this.versions, this.maxUsers);
    }
  }

  /** Each user's version, in order. */
  of(userIds: string[]): number[] {
    return userIds.map((u) => this.versions.get(u) ?? this.floor);
  }
}
