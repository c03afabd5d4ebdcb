import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, type Event, type ServerFrame } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { Logger } from "../log/logger.js";
import type { ReadLogResponse } from "../../gen/chat/internal/v1/store.js";
import { logContinuity } from "../store/store.js";
import { CatchUp, type CatchUpConfig } from "./catch-up.js";

const message = (pos: number, text = `m${pos}`): Event => ({
  pos,
  atMs: pos,
  kind: { $case: "message", value: { conversationId: "c", seq: pos, senderId: "a", senderDeviceId: "d", clientMsgId: `m${pos}`, text, sentAtMs: 1, editedAtMs: 0, deleted: false } },
});

/**
 * One user's sync log as the store keeps it. Pages are cut at `pageCut` events
 * (as the store cuts by bytes) with `more` set; `hold()` makes the next reads
 * wait until the test lets them go, so live events can arrive mid catch-up.
 */
class FakeLog {
  readonly events: Event[] = [];
  /** The `afterPos` of every read, in order. */
  readonly reads: number[] = [];
  pageCut = Infinity;
  failNext: Error | undefined;
  /** Every read fails with this while set. */
  failAll: Error | undefined;
  private gate: Promise<void> | undefined;

  constructor(n = 0) {
    this.append(n);
  }

  /** Stores `n` more events; returns them. */
  append(n: number): Event[] {
    const added = Array.from({ length: n }, (_, i) => message(this.events.length + i + 1));
    this.events.push(...added);
    return added;
  }

  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return () => { this.gate = undefined; release(); };
  }

  /** Deletes the entries up to `pos`, as the store's trim does (docs/sync-log-trim.md). */
  trim(pos: number): void {
    this.trimmed = pos;
  }
  private trimmed = 0;

  async read(afterPos: number, limit: number): Promise<ReadLogResponse> {
    this.reads.push(afterPos);
    // The page is what was stored when the read reached the store, not when it answered.
    const head = this.events.length;
    const after = this.events.filter((e) => e.pos > afterPos && e.pos > this.trimmed);
    // The stores' rule for what is missing (logContinuity).
    const continuous = logContinuity(afterPos, head, after.map((e) => e.pos));
    const cut = Math.min(limit, this.pageCut);
    const events = "trimmedTo" in continuous ? [] : after.slice(0, cut);
    await this.gate;
    if (this.failAll) throw this.failAll;
    if (this.failNext) { const err = this.failNext; this.failNext = undefined; throw err; }
    return { events, head, more: after.length > events.length, trimmedTo: "trimmedTo" in continuous ? continuous.trimmedTo : 0 };
  }
}

/** A device on the other end: every frame the machine sends, and whether the socket has taken it. */
class FakeDevice {
  readonly frames: ServerFrame[] = [];
  buffered = 0;
  ended: string | undefined;
  /** Write callbacks of frames the socket has not taken yet (only while `slow`). */
  readonly unwritten: Array<() => void> = [];
  slow = false;

  emit(frame: ServerFrame, onWritten?: () => void): void {
    this.frames.push(frame);
    if (!onWritten) return;
    if (this.slow) this.unwritten.push(onWritten);
    else onWritten();
  }

  /** Event positions sent, in order. */
  positions(): number[] {
    return this.frames.flatMap((f) => (f.kind?.$case === "event" ? [f.kind.value.pos] : []));
  }

  /** The positions of every Synced sent, in order. */
  synced(): number[] {
    return this.frames.flatMap((f) => (f.kind?.$case === "synced" ? [f.kind.value.pos] : []));
  }

  errors(): ErrorCode[] {
    return this.frames.flatMap((f) => (f.kind?.$case === "error" ? [f.kind.value.code] : []));
  }
}

const CONFIG: CatchUpConfig = { pageSize: 1_000, maxBufferedBytes: 1 << 20 };

/**
 * A machine over a log of `stored` events and a fake device. `start` starts it
 * from a cursor and lets it run; `startHeld` does the same with its first read
 * held until the `release` it returns. `seen` is what the device received and
 * where the store was read from.
 */
function machine(stored: number, config: Partial<CatchUpConfig> = {}, opts: { probes?: number[] } = {}) {
  const log = new FakeLog(stored);
  const device = new FakeDevice();
  const probes = opts.probes;
  const catchUp = new CatchUp(
    {
      readLog: (afterPos, limit) => log.read(afterPos, limit),
      ...(probes ? { logHead: async () => { probes.push(log.events.length); return log.events.length; } } : {}),
      emit: (frame, onWritten) => device.emit(frame, onWritten),
      bufferedBytes: () => device.buffered,
      end: (reason) => { device.ended = reason; },
    },
    { ...CONFIG, ...config },
    { userId: "u", deviceId: "phone" },
    new Logger("test", "error"),
  );
  const start = async (cursor = 0) => { catchUp.start(cursor); await settle(); };
  const startHeld = async (cursor = 0) => { const release = log.hold(); await start(cursor); return release; };
  const seen = () => ({ positions: device.positions(), synced: device.synced(), reads: log.reads });
  return { log, device, catchUp, start, startHeld, seen };
}

/** Lets the machine run until it waits on nothing but the test (every read and emit here settles at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Positions from..to, both included. */
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("CatchUp", () => {
  it("asks the head first at Hello: a device that holds the whole log is synced without reading it", async () => {
    const probes: number[] = [];
    const { catchUp, start, seen } = machine(5, {}, { probes });
    await start(5);
    expect(probes).toEqual([5]);
    expect(seen()).toEqual({ positions: [], synced: [5], reads: [] });
    expect(catchUp.cursor).toBe(5);
  });

  it("reads from the cursor after the head probe when the log is past it, or when the cursor is ahead of it", async () => {
    const probes: number[] = [];
    const behind = machine(5, {}, { probes });
    await behind.start(2);
    expect(behind.seen()).toEqual({ positions: [3, 4, 5], synced: [5], reads: [2] });
    // A cursor from the future is the read's business, as without the probe: replayed from 0.
    const ahead = machine(3, {}, { probes });
    await ahead.start(9);
    expect(ahead.device.errors()).toEqual([ErrorCode.ERROR_CODE_CURSOR_AHEAD]);
    expect(ahead.seen()).toEqual({ positions: [1, 2, 3], synced: [3], reads: [9, 0] });
    expect(probes).toEqual([5, 3]);
  });

  it("probes only at Hello: a resync or a gap reads the log", async () => {
    const probes: number[] = [];
    const { log, catchUp, start, seen } = machine(3, {}, { probes });
    await start(3);
    const [fourth, fifth] = log.append(2);
    catchUp.deliver(fifth!);
    await settle();
    expect(seen()).toEqual({ positions: [4, 5], synced: [3, 5], reads: [3] });
    expect(fourth!.pos).toBe(4);
    catchUp.resync(0);
    await settle();
    expect(seen().reads).toEqual([3, 0]);
    expect(probes).toEqual([3]);
  });

  it("sends the stored events after the device's cursor, in order, then Synced at the head", async () => {
    const { catchUp, start, seen } = machine(5);
    await start(2);
    expect(seen()).toEqual({ positions: [3, 4, 5], synced: [5], reads: [2] });
    expect(catchUp.cursor).toBe(5);
  });

  it("reads page after page while the store says more follow, a page cut short of the size asked included", async () => {
    const { log, start, seen } = machine(7, { pageSize: 3 });
    log.pageCut = 2; // the store cuts by bytes before the count asked for
    await start();
    expect(seen()).toEqual({ positions: range(1, 7), synced: [7], reads: [0, 2, 4, 6] });
  });

  it("sends a live event that follows the cursor at once, without reading the store", async () => {
    const { log, catchUp, start, seen } = machine(2);
    await start();
    catchUp.deliver(log.append(1)[0]!);
    expect(seen()).toEqual({ positions: [1, 2, 3], synced: [2], reads: [0] });
  });

  it("drops positions already sent: a live event delivered twice, or one the catch-up already sent", async () => {
    const { log, catchUp, start, seen } = machine(3);
    await start();
    const [e4] = log.append(1);
    catchUp.deliver(e4!);
    catchUp.deliver(e4!);
    catchUp.deliver(log.events[1]!);
    await settle();
    expect(seen()).toEqual({ positions: range(1, 4), synced: [3], reads: [0] });
  });

  it("fills a gap from the store: a live event that skips ahead is not sent until the ones before it are", async () => {
    const { log, catchUp, start, seen } = machine(2);
    await start();
    // Events 3 and 4 were lost on the way (a stale route); 5 arrives.
    const [, , e5] = log.append(3);
    catchUp.deliver(e5!);
    expect(seen().positions).toEqual([1, 2]);
    await settle();
    expect(seen()).toEqual({ positions: range(1, 5), synced: [2, 5], reads: [0, 2] });
  });

  it("holds live events back during a catch-up and sends them after the stored ones, in order, each once", async () => {
    const { log, catchUp, startHeld, seen } = machine(3);
    const release = await startHeld();
    // Stored after the read reached the store (its page ends at 3), delivered while it is out, out of order.
    const [e4, e5] = log.append(2);
    catchUp.deliver(e5!);
    catchUp.deliver(e4!);
    expect(seen().positions).toEqual([]);
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(1, 5), synced: [5], reads: [0] });
  });

  it("sends a live event once when the stored page also holds it", async () => {
    const { log, catchUp, startHeld, seen } = machine(5); // the page holds 1-5
    const release = await startHeld();
    catchUp.deliver(log.events[3]!);
    catchUp.deliver(log.events[4]!);
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(1, 5), synced: [5], reads: [0] });
  });

  it("reads the store again when a held live event leaves a gap after the stored ones", async () => {
    const { log, catchUp, startHeld, seen } = machine(3);
    const release = await startHeld();
    const [, e5] = log.append(2); // 4's delivery was lost
    catchUp.deliver(e5!);
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(1, 5), synced: [5], reads: [0, 3] });
  });

  it("holds live events within the byte bound; those it could not hold are read from the store", async () => {
    const { log, catchUp, startHeld, seen } = machine(1, { maxBufferedBytes: 2_500 });
    const release = await startHeld();
    // Five 1,000-byte messages: two fit in the bound, the rest are dropped and must come from the store.
    for (let pos = 2; pos <= 6; pos++) {
      const e = message(pos, "x".repeat(1_000));
      log.events.push(e);
      catchUp.deliver(e);
    }
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(1, 6), synced: [6], reads: [0, 3] });
  });

  it("a head check past the cursor finds an event whose live delivery was lost", async () => {
    const { log, catchUp, start, seen } = machine(3);
    await start();
    catchUp.checkHead(3); // up to date: no read
    await settle();
    expect(seen().reads).toEqual([0]);
    log.append(1); // stored, never delivered
    catchUp.checkHead(4);
    await settle();
    expect(seen()).toEqual({ positions: range(1, 4), synced: [3, 4], reads: [0, 3] });
  });

  it("a head check during a catch-up starts no second read", async () => {
    const { catchUp, startHeld, seen } = machine(3);
    const release = await startHeld();
    catchUp.checkHead(3);
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(1, 3), synced: [3], reads: [0] });
  });

  it("a resync request during a catch-up restarts it from the cursor the client gives, dropping what was held", async () => {
    const { log, catchUp, startHeld, seen } = machine(6);
    const release = await startHeld(4);
    catchUp.deliver(log.append(1)[0]!); // held, then dropped by the resync (the store has it)
    catchUp.resync(1);
    release();
    await settle();
    expect(seen()).toEqual({ positions: range(2, 7), synced: [7], reads: [4, 1] });
  });

  it("a resync request while a paced page streams: the rest of that page is not sent, the log follows from the new cursor", async () => {
    const { device, catchUp, start, seen } = machine(5, { maxBufferedBytes: 400 });
    device.slow = true;
    device.buffered = 101; // past a quarter of the bound: each event waits for the socket
    await start();
    device.unwritten.shift()!();
    await settle();
    expect(seen().positions).toEqual([1, 2]);
    catchUp.resync(1);
    device.slow = false;
    device.unwritten.shift()!();
    await settle();
    expect(seen()).toEqual({ positions: [1, 2, 2, 3, 4, 5], synced: [5], reads: [0, 1] });
  });

  it("a resync request when caught up sends the log again after the cursor the client gives", async () => {
    const { catchUp, start, seen } = machine(4);
    await start();
    catchUp.resync(2);
    await settle();
    expect(seen()).toEqual({ positions: [1, 2, 3, 4, 3, 4], synced: [4, 4], reads: [0, 2] });
  });

  it("a cursor ahead of the log's head is told CURSOR_AHEAD and replays the log from 0", async () => {
    const { device, start, seen } = machine(3);
    await start(9);
    expect(device.errors()).toEqual([ErrorCode.ERROR_CODE_CURSOR_AHEAD]);
    expect(seen()).toEqual({ positions: range(1, 3), synced: [3], reads: [9, 0] });
  });

  it("a cursor older than the log's trim is told LogTrimmed at the trim point, then gets every event after it", async () => {
    const { log, device, catchUp, start, seen } = machine(10);
    log.trim(6);
    await start(2);
    const trimmed = device.frames.findIndex((f) => f.kind?.$case === "logTrimmed");
    expect(device.frames[trimmed]!.kind).toEqual({ $case: "logTrimmed", value: { pos: 6 } });
    // Before any event after it, so the device resets its state first.
    expect(device.frames.findIndex((f) => f.kind?.$case === "event")).toBeGreaterThan(trimmed);
    expect(seen()).toEqual({ positions: range(7, 10), synced: [10], reads: [2, 6] });
    expect(catchUp.cursor).toBe(10);
  });

  it("a log trimmed to its head tells the device so and is synced there; a cursor past the trim never hears of it", async () => {
    const old = machine(5);
    old.log.trim(5);
    await old.start(1);
    expect(old.device.frames.map((f) => f.kind?.$case)).toEqual(["logTrimmed", "synced"]);
    expect(old.seen().synced).toEqual([5]);
    const recent = machine(10);
    recent.log.trim(4);
    await recent.start(4);
    expect(recent.device.frames.some((f) => f.kind?.$case === "logTrimmed")).toBe(false);
    expect(recent.seen()).toEqual({ positions: range(5, 10), synced: [10], reads: [4] });
  });

  it("a store that cannot be read ends the session with UNAVAILABLE, the cursor where it was", async () => {
    const { log, device, catchUp, start, seen } = machine(3);
    log.failNext = new Error("store down");
    await start(1);
    expect(device.errors()).toEqual([ErrorCode.ERROR_CODE_UNAVAILABLE]);
    expect(device.ended).toBe("sync failed");
    expect(seen()).toEqual({ positions: [], synced: [], reads: [1] });
    expect(catchUp.cursor).toBe(1);
  });

  describe("a store that refuses reads as retryable (UNAVAILABLE)", () => {
    afterEach(() => { vi.useRealTimers(); });
    const away = () => ChatError.unavailable("the message log is being recovered");

    it("is read again in the session with growing waits, live events held meanwhile; the device gets everything in order, then Synced", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const { log, device, catchUp, start, seen } = machine(3);
      log.failAll = away();
      await start(1);
      expect(log.reads).toEqual([1]);
      await vi.advanceTimersByTimeAsync(249);
      expect(log.reads).toEqual([1]);
      await vi.advanceTimersByTimeAsync(1);
      expect(log.reads).toEqual([1, 1]);
      await vi.advanceTimersByTimeAsync(500);
      expect(log.reads).toEqual([1, 1, 1]);
      catchUp.deliver(log.append(1)[0]!);
      log.failAll = undefined;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(device.ended).toBeUndefined();
      expect(device.errors()).toEqual([]);
      expect(seen()).toEqual({ positions: [2, 3, 4], synced: [4], reads: [1, 1, 1, 1] });
    });

    it("ends the session with UNAVAILABLE, the cursor where it was, once the store has refused for ~28 s", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const { log, device, catchUp, start } = machine(3);
      log.failAll = away();
      await start(1);
      await vi.advanceTimersByTimeAsync(27_000);
      expect(device.ended).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1_000);
      expect(device.ended).toBe("sync failed");
      expect(device.errors()).toEqual([ErrorCode.ERROR_CODE_UNAVAILABLE]);
      expect(log.reads.length).toBe(11);
      expect(catchUp.cursor).toBe(1);
    });

    it("stops waiting when the session stops: nothing more is read or sent", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const { log, device, catchUp, start } = machine(3);
      log.failAll = away();
      await start(1);
      catchUp.stop();
      log.failAll = undefined;
      await vi.advanceTimersByTimeAsync(30_000);
      expect(log.reads).toEqual([1]);
      expect(device.frames).toEqual([]);
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  it("sends nothing once stopped: not the page being read, nor live events", async () => {
    const { log, device, catchUp, startHeld, seen } = machine(3);
    const release = await startHeld();
    catchUp.stop();
    release();
    catchUp.deliver(log.append(1)[0]!);
    catchUp.checkHead(4);
    catchUp.resync(0);
    catchUp.start(0);
    await settle();
    expect(device.frames).toEqual([]);
    expect(seen().reads).toEqual([0]);
  });

  it("past a quarter of the send buffer waits for the socket to take each event, and stopping wakes the wait", async () => {
    const { device, catchUp, start, seen } = machine(3, { maxBufferedBytes: 400 });
    device.slow = true;
    device.buffered = 101;
    await start();
    expect(seen().positions).toEqual([1]);
    device.unwritten.shift()!();
    await settle();
    expect(seen().positions).toEqual([1, 2]);
    catchUp.stop();
    await settle();
    expect(seen()).toEqual({ positions: [1, 2], synced: [], reads: [0] });
  });
});
