import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { PointerMoveResult, PointerUpdate } from "../store/store.js";
import { PointerBatcher } from "./pointer-batcher.js";

/** A store double that records each write and answers from a rule; `hold` keeps a write in flight. */
function fakeStore(rule: (u: PointerUpdate) => PointerMoveResult = (u) => ({ pointers: { deliveredSeq: u.deliveredSeq, readSeq: u.readSeq, changed: true } })) {
  const writes: PointerUpdate[][] = [];
  let release: (() => void) | undefined;
  let held = false;
  return {
    writes,
    hold() { held = true; },
    release() { held = false; release?.(); },
    write: async (updates: PointerUpdate[]) => {
      writes.push(updates.map((u) => ({ ...u })));
      if (held) await new Promise<void>((r) => { release = r; });
      return updates.map(rule);
    },
  };
}

const u = (conversationId: string, userId: string, deliveredSeq: number, readSeq = 0): PointerUpdate => ({ conversationId, userId, deliveredSeq, readSeq });

describe("PointerBatcher: group commit of acks", () => {
  it("writes the acks of one tick in one call, merging each user's acks of a conversation to the highest", async () => {
    const store = fakeStore();
    const moved: PointerUpdate[] = [];
    const b = new PointerBatcher(store.write, (upd) => moved.push({ ...upd }));
    const results = await Promise.all([b.update(u("c1", "bob", 3)), b.update(u("c1", "bob", 5, 2)), b.update(u("c1", "bob", 4)), b.update(u("c2", "ann", 1, 1))]);
    expect(store.writes).toEqual([[u("c1", "bob", 5, 2), u("c2", "ann", 1, 1)]]);
    // Every ack answers with the pointers after the merged move; each move is reported once.
    expect(results.map((r) => [r.deliveredSeq, r.readSeq])).toEqual([[5, 2], [5, 2], [5, 2], [1, 1]]);
    expect(moved).toEqual([u("c1", "bob", 5, 2), u("c2", "ann", 1, 1)]);
  });

  it("gathers the acks that arrive while a write is in flight into the next single write", async () => {
    const store = fakeStore();
    const b = new PointerBatcher(store.write, () => {});
    store.hold();
    const first = b.update(u("c1", "bob", 1));
    await new Promise((r) => setImmediate(r));
    expect(store.writes).toHaveLength(1);
    const later = [b.update(u("c1", "bob", 2)), b.update(u("c1", "ann", 2)), b.update(u("c3", "bob", 7))];
    await new Promise((r) => setImmediate(r));
    expect(store.writes).toHaveLength(1);
    store.release();
    await Promise.all([first, ...later]);
    expect(store.writes).toEqual([[u("c1", "bob", 1)], [u("c1", "bob", 2), u("c1", "ann", 2), u("c3", "bob", 7)]]);
  });

  it("refuses a non-member's ack alone; the others of the batch succeed", async () => {
    const store = fakeStore((x) => (x.userId === "mallory" ? { error: ErrorCode.ERROR_CODE_PERMISSION_DENIED } : { pointers: { deliveredSeq: x.deliveredSeq, readSeq: 0, changed: false } }));
    const moved: PointerUpdate[] = [];
    const b = new PointerBatcher(store.write, (upd) => moved.push(upd));
    const [bad, good] = await Promise.allSettled([b.update(u("c1", "mallory", 9)), b.update(u("c1", "bob", 4))]);
    expect(bad).toMatchObject({ status: "rejected", reason: { code: ErrorCode.ERROR_CODE_PERMISSION_DENIED } });
    expect(good).toMatchObject({ status: "fulfilled", value: { deliveredSeq: 4, changed: false } });
    // Nothing moved (changed false), so nothing to report.
    expect(moved).toEqual([]);
  });

  it("fails every ack of a write the store could not make, and the next tick writes anew", async () => {
    let fail = true;
    const b = new PointerBatcher(async (updates) => {
      if (fail) throw ChatError.unavailable("store down");
      return updates.map((x) => ({ pointers: { deliveredSeq: x.deliveredSeq, readSeq: 0, changed: true } }));
    }, () => {});
    const failed = await Promise.allSettled([b.update(u("c1", "bob", 1)), b.update(u("c2", "bob", 1))]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(failed[0]).toMatchObject({ reason: { code: ErrorCode.ERROR_CODE_UNAVAILABLE } });
    fail = false;
    await expect(b.update(u("c1", "bob", 2))).resolves.toMatchObject({ deliveredSeq: 2 });
    await b.drain();
  });
});
