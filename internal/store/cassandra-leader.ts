import cassandra from "cassandra-driver";
import { ChatError } from "../errors/chat-error.js";
import { everyNodeHoldsEverything, groupForBatches, timestamped } from "./cassandra-batches.js";
import { num } from "./sql.js";

const { consistencies, Long } = cassandra.types;
type Long = cassandra.types.Long;

/*
 * The message log's single writer (docs/cassandra-log.md). One store instance at a time
 * holds the keyspace's log under an epoch, taken with the one lightweight transaction of
 * the design; it numbers conversations and sync logs in memory and writes with plain
 * writes only. Every write carries a synthetic timestamp, T0 + epoch·2^40 + n (n counts
 * this leader's writes), so that a later leader's write of a cell always wins over a
 * deposed one's, whatever the clocks say, and one leader's writes win in the order it made
 * them.
 *
 * A tick commits everything staged since the last one:
 *   1. the staged rows, and the marks (durable heads) of earlier ticks when they are due;
 *   2. the tick's intent: the heads it moves, one row in the epoch's partition;
 *   3. a LOCAL_QUORUM read of the fence: still this epoch, or nothing is acknowledged (skipped
 *      while the leader's etcd lease vouches that no other leader can exist yet).
 * A tick's intent is durable before any of its marks is written. Marks are written late and
 * seldom: the heads a tick moves wait, merged per key, until MARK_EVERY_MS after the first of
 * them, then go out a slice per tick (a busy conversation's head is marked once in that
 * time, not once per message). Each intent records the tick through which every head is
 * marked (`marked_through`), so the intents after it name every head the marks may not yet
 * show. A new leader, after its fence write, applies those intents of every epoch not yet
 * closed and closes them: writes a deposed leader makes after that are above every head,
 * never read, and overwritten (or outvoted by timestamp) when the positions are used again.
 */

/** Above every real write timestamp (microseconds) until the year 2112; old rows written by real clocks lose to the log's. */
const T0 = Long.fromNumber(2 ** 52);
const EPOCH_SHIFT = 40;
/**
 * How long a moved head may wait for its mark. Longer merges more moves of a key into one
 * write; a takeover then reads more intents (one per tick of this window, a few small rows).
 */
const MARK_EVERY_MS = 2_000;
/** Marks written per tick at most: a large set goes out over a few ticks, never as one burst of requests. */
const MARKS_PER_TICK = 2_000;
/** Ticks between range deletions of the epoch's intents that are marked through (none is read again). */
const INTENT_TRIM_EVERY = 1_000;
/** Heads kept in memory; past it, those fully marked and idle are dropped (reloaded from their marks). */
const MAX_HEADS = 500_000;

export interface Staged {
  query: string;
  params: unknown[];
}

/** A key's head: the last seq (conversation) or position (user log) handed out, committed, and marked. */
export interface Head {
  assigned: number;
  committed: number;
  marked: number;
}

interface Entry extends Head {
  loading?: Promise<void>;
}

interface Work {
  writes: Staged[];
  heads: Map<string, number>;
  /** Writes that put back what `writes` change in place (cells of committed rows), should the tick not commit. */
  restore: Staged[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

export type LeaderFailure = { kind: "deposed"; epoch: number } | { kind: "error"; err: unknown };

function logTables(ks: string) {
  return {
    fence: `SELECT epoch FROM ${ks}.log_leader WHERE name = 'log'`,
    createFence: `INSERT INTO ${ks}.log_leader (name, epoch) VALUES ('log', 1) IF NOT EXISTS`,
    moveFence: `UPDATE ${ks}.log_leader SET epoch = ? WHERE name = 'log' IF epoch = ?`,
    closed: `SELECT epoch FROM ${ks}.log_closed WHERE name = 'log'`,
    close: `INSERT INTO ${ks}.log_closed (name, epoch) VALUES ('log', ?)`,
    lastIntent: `SELECT tick, heads, marked_through FROM ${ks}.log_intents WHERE epoch = ? LIMIT 1`,
    intentsAfter: `SELECT heads FROM ${ks}.log_intents WHERE epoch = ? AND tick > ?`,
    intent: `INSERT INTO ${ks}.log_intents (epoch, tick, heads, marked_through) VALUES (?, ?, ?, ?)`,
    trimIntents: `DELETE FROM ${ks}.log_intents WHERE epoch = ? AND tick < ?`,
    restore: `INSERT INTO ${ks}.log_restore (epoch, tick, writes) VALUES (?, ?, ?)`,
    restoresAfter: `SELECT tick, writes FROM ${ks}.log_restore WHERE epoch = ? AND tick > ?`,
    trimRestores: `DELETE FROM ${ks}.log_restore WHERE epoch = ? AND tick < ?`,
    dropRestore: `DELETE FROM ${ks}.log_restore WHERE epoch = ? AND tick = ?`,
    dropRestores: `DELETE FROM ${ks}.log_restore WHERE epoch = ?`,
    mark: `SELECT value FROM ${ks}.log_marks WHERE key = ?`,
    setMark: `INSERT INTO ${ks}.log_marks (key, value) VALUES (?, ?)`,
  };
}

export class LogLeader {
  private counter = 0;
  private tickNo = 0;
  private queue: Work[] = [];
  private running = false;
  /** Heads committed since the last mark set was taken, merged per key; and when the first of them was. */
  private unmarked = new Map<string, number>();
  private unmarkedSince = 0;
  /** A mark set being written, a slice per tick, and the tick every head is marked through once it is. */
  private marking: { rest: Array<[string, number]>; through: number } | undefined;
  /** Every head moved by this tick or an earlier one has its mark written. */
  private markedThrough = 0;
  private readonly heads = new Map<string, Entry>();
  private markTimer: NodeJS.Timeout | undefined;
  private failure: LeaderFailure | undefined;
  private readonly cql: ReturnType<typeof logTables>;
  /** Waiting for the end of the next tick (or the leader's failure). */
  private tickWaiters: Array<() => void> = [];

  private constructor(
    private readonly client: cassandra.Client,
    private readonly keyspace: string,
    readonly epoch: number,
    /** A key's head when it has no mark yet (a keyspace written before the marks existed; 0 for a new key). */
    private readonly legacyHead: (key: string) => Promise<number>,
    private readonly onFailed: (f: LeaderFailure) => void,
    /** Until when (performance.now()) no other instance can have been elected to lead: see run(). */
    private readonly heldUntil: () => number,
  ) {
    this.cql = logTables(keyspace);
  }

  /**
   * Takes the log: moves the fence to a new epoch (the only lightweight transaction), then
   * closes every earlier epoch by applying its last intent. With `from`, only if the fence
   * still shows that epoch (a leader taking its own log back after an error): otherwise
   * another leader has it, and the answer is the epoch that took it (this one is deposed).
   */
  static async takeOver(client: cassandra.Client, ks: string, opts: { from?: number; legacyHead: (key: string) => Promise<number>; onFailed: (f: LeaderFailure) => void; heldUntil?: () => number }): Promise<LogLeader | { takenBy: number }> {
    const cql = logTables(ks);
    const serial = { prepare: true, serialConsistency: consistencies.localSerial };
    let epoch = 0;
    for (let attempt = 0; epoch === 0; attempt++) {
      const cur = (await client.execute(cql.fence, [], { ...serial, consistency: consistencies.localSerial })).first();
      const have = cur ? num(cur["epoch"]) : 0;
      if (opts.from !== undefined && have !== opts.from) return { takenBy: have };
      const r = have === 0 ? await client.execute(cql.createFence, [], serial) : await client.execute(cql.moveFence, [have + 1, have], serial);
      if (r.wasApplied()) epoch = have + 1;
      else if (opts.from !== undefined) return { takenBy: have + 1 };
      else if (attempt > 20) throw ChatError.unavailable("the message log is being taken over by another instance");
    }
    const leader = new LogLeader(client, ks, epoch, opts.legacyHead, opts.onFailed, opts.heldUntil ?? (() => 0));
    await leader.closeEarlierEpochs();
    return leader;
  }

  /** The timestamp of this leader's next write. */
  ts(): Long {
    return T0.add(Long.fromNumber(this.epoch).shiftLeft(EPOCH_SHIFT)).add(Long.fromNumber(this.counter++));
  }

  get failed(): LeaderFailure | undefined {
    return this.failure;
  }

  /** A key's head, loaded from its mark on first use. */
  async head(key: string): Promise<Head> {
    this.check();
    let e = this.heads.get(key);
    if (!e) {
      const entry: Entry = { assigned: 0, committed: 0, marked: 0 };
      entry.loading = this.loadMark(key).then((v) => {
        entry.assigned = entry.committed = entry.marked = v;
        entry.loading = undefined;
      });
      e = entry;
      this.heads.set(key, e);
      // A failed load leaves no entry behind: the next caller reads again.
      entry.loading.catch(() => { if (this.heads.get(key) === entry) this.heads.delete(key); });
    }
    if (e.loading) await e.loading;
    this.check();
    return e;
  }

  /** A key's head once nothing handed out for it is still in flight: assigned = committed. */
  async settled(key: string): Promise<Head> {
    const h = await this.head(key);
    // Checked before each wait, not only after one: a failure that lands between head()'s
    // answer and this line has already woken the waiters it had, and no tick will come.
    for (this.check(); h.assigned > h.committed; this.check()) {
      await new Promise<void>((resolve) => this.tickWaiters.push(resolve));
    }
    return h;
  }

  /**
   * The head of a key an earlier head() call loaded, for a caller that awaited it and now hands
   * out positions without awaiting again. UNAVAILABLE if the leader failed since (which empties
   * the heads) or dropped it: the caller takes every head it needs before handing out any
   * position, so its work is then refused, retryable, and never half-numbered.
   */
  loaded(key: string): Head {
    this.check();
    const e = this.heads.get(key);
    // Dropped as idle (evict) while the caller waited for its other reads: it reads again on its retry.
    if (!e || e.loading) throw ChatError.unavailable("the message log was reloading a head; retry");
    return e;
  }

  /**
   * Commits staged rows and the heads they move with the next tick. Resolves once the tick is
   * durable and the fence still showed this epoch; rejects UNAVAILABLE otherwise (the leader
   * has then failed: nothing it staged is acknowledged).
   *
   * `restore`: for writes that change cells of rows already committed (an edit, a deletion),
   * the writes that put the cells back as they are now. They are made durable before the
   * tick's rows, and a next leader applies them if this tick never commits
   * (docs/cassandra-log.md, "Changes in place"). Writes at positions past the heads need none.
   */
  submit(writes: Staged[], heads: Map<string, number>, restore: Staged[] = []): Promise<void> {
    this.check();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ writes, heads, restore, resolve, reject });
      void this.run();
    });
  }

  /** Stops the mark timer; what was acknowledged is durable through its intent. */
  stop(): void {
    clearTimeout(this.markTimer);
    if (!this.failure) this.fail({ kind: "error", err: ChatError.unavailable("message store closing") });
  }

  private check(): void {
    if (this.failure) throw ChatError.unavailable(this.failure.kind === "deposed" ? "this message store instance no longer holds the log" : "the message log is being recovered");
  }

  private async loadMark(key: string): Promise<number> {
    const row = (await this.client.execute(this.cql.mark, [key], { prepare: true, isIdempotent: true })).first();
    return row ? num(row["value"]) : this.legacyHead(key);
  }

  private exec(s: Staged): Promise<unknown> {
    return this.client.execute(s.query, s.params, { prepare: true, isIdempotent: true, timestamp: this.ts() });
  }

  /**
   * A tick's rows. Timestamps are taken here, in staging order: a later write of a cell wins,
   * in a batch as much as in requests of their own. Small unlogged batches where every node
   * holds every partition (docs/cassandra-log.md, "Batches"); a request each otherwise.
   */
  private async writeAll(staged: Staged[]): Promise<void> {
    if (!everyNodeHoldsEverything(this.client, this.keyspace)) {
      await Promise.all(staged.map((s) => this.exec(s)));
      return;
    }
    const timed = staged.map((s) => timestamped(s, this.ts()));
    const q = { prepare: true, isIdempotent: true };
    await Promise.all(groupForBatches(timed).map((g) => (g.length === 1 ? this.client.execute(g[0]!.query, g[0]!.params, q) : this.client.batch(g, { ...q, logged: false }))));
  }

  private async run(): Promise<void> {
    if (this.running || this.failure) return;
    this.running = true;
    clearTimeout(this.markTimer);
    this.markTimer = undefined;
    let batch: Work[] = [];
    try {
      while (this.queue.length > 0 || this.marksDue()) {
        batch = this.queue.splice(0, this.queue.length);
        const tick = ++this.tickNo;
        const marks = this.takeMarks(tick);
        const staged: Staged[] = [];
        for (const w of batch) for (const s of w.writes) staged.push(s);
        for (const [k, v] of marks.slice) staged.push({ query: this.cql.setMark, params: [k, v] });
        const restore = batch.flatMap((w) => w.restore);
        if (restore.length > 0) {
          // Before any cell of a committed row changes, what puts it back is durable, and this
          // leader still leads: a next leader elected since would not read the record.
          await this.exec({ query: this.cql.restore, params: [this.epoch, tick, JSON.stringify(restore)] });
          if (!(await this.stillLeads(batch))) return;
        }
        await this.writeAll(staged);
        const heads = new Map<string, number>();
        for (const w of batch) for (const [k, v] of w.heads) heads.set(k, Math.max(heads.get(k) ?? 0, v));
        const markedThrough = marks.through ?? this.markedThrough;
        await this.exec({ query: this.cql.intent, params: [this.epoch, tick, Object.fromEntries(heads), markedThrough] });
        // The fence read is what keeps a deposed leader from answering a tick whose intent the
        // next leader may not have read. While this process's election is surely held (its etcd
        // lease, renewed after this intent was durable), no next leader exists yet: one is elected
        // only after the lease lapses, then moves the fence and reads the intents, this one among
        // them. So the read is skipped then (docs/cassandra-log.md, "The fence read and the lease").
        if (!(await this.stillLeads(batch))) return;
        this.markedThrough = markedThrough;
        for (const [k, v] of marks.slice) { const e = this.heads.get(k); if (e) e.marked = Math.max(e.marked, v); }
        if (heads.size > 0 && this.unmarked.size === 0) this.unmarkedSince = Date.now();
        for (const [k, v] of heads) {
          const e = this.heads.get(k);
          if (e) e.committed = Math.max(e.committed, v);
          this.unmarked.set(k, Math.max(this.unmarked.get(k) ?? 0, v));
        }
        // The tick committed: its restore record is needed no more, and it holds the text the
        // change replaced (an erased account's messages must be in no table once the erasure is
        // answered). Removed before the answers; a failure leaves it to the trim and to the
        // epoch's close, and the tick is answered all the same (it is committed).
        if (restore.length > 0) await this.exec({ query: this.cql.dropRestore, params: [this.epoch, tick] }).catch(() => {});
        for (const w of batch) w.resolve();
        batch = [];
        this.wakeTickWaiters();
        // Housekeeping after the answers, not before them: the intents marked through are read no more.
        if (tick % INTENT_TRIM_EVERY === 0 && this.markedThrough > 0) {
          await this.exec({ query: this.cql.trimIntents, params: [this.epoch, this.markedThrough + 1] });
          await this.exec({ query: this.cql.trimRestores, params: [this.epoch, this.markedThrough + 1] });
        }
      }
      // Idle with heads waiting for their marks: a tick of marks alone when they are due.
      if (!this.failure && (this.unmarked.size > 0 || this.marking)) {
        this.markTimer = setTimeout(() => void this.run(), this.marking ? 0 : Math.max(0, this.unmarkedSince + MARK_EVERY_MS - Date.now()));
        this.markTimer.unref();
      }
      if (this.heads.size > MAX_HEADS) this.evict();
    } catch (err) {
      this.fail({ kind: "error", err }, batch);
    } finally {
      this.running = false;
    }
  }

  /**
   * Whether this leader still holds the log, for what it wrote so far: its etcd lease vouches
   * that no other leader can have been elected yet, or the fence read at LOCAL_QUORUM still shows
   * its epoch. If not, it is deposed and `batch` is refused.
   */
  private async stillLeads(batch: Work[]): Promise<boolean> {
    if (performance.now() < this.heldUntil()) return true;
    const fence = num((await this.client.execute(this.cql.fence, [], { prepare: true, consistency: consistencies.localQuorum, isIdempotent: true })).first()?.["epoch"]);
    if (fence === this.epoch) return true;
    this.fail({ kind: "deposed", epoch: fence }, batch);
    return false;
  }

  /** A mark set is being written, or the oldest unmarked head has waited its time. */
  private marksDue(): boolean {
    return this.marking !== undefined || (this.unmarked.size > 0 && Date.now() - this.unmarkedSince >= MARK_EVERY_MS);
  }

  /**
   * The marks this tick writes: a slice of the set being written, starting one when it is due
   * (every head committed so far, so all of them are marked through the tick before). `through`
   * is set on the tick that writes the set's last slice.
   */
  private takeMarks(tick: number): { slice: Array<[string, number]>; through?: number } {
    if (!this.marking && this.marksDue()) {
      this.marking = { rest: [...this.unmarked], through: tick - 1 };
      this.unmarked = new Map();
    }
    const m = this.marking;
    if (!m) return { slice: [] };
    const slice = m.rest.splice(0, MARKS_PER_TICK);
    if (m.rest.length > 0) return { slice };
    this.marking = undefined;
    return { slice, through: m.through };
  }

  private fail(f: LeaderFailure, batch: Work[] = []): void {
    if (this.failure) return;
    this.failure = f;
    clearTimeout(this.markTimer);
    const err = ChatError.unavailable(f.kind === "deposed" ? "this message store instance no longer holds the log" : "the message log is being recovered");
    for (const w of [...batch, ...this.queue.splice(0, this.queue.length)]) w.reject(err);
    this.heads.clear();
    this.wakeTickWaiters();
    this.onFailed(f);
  }

  private wakeTickWaiters(): void {
    const waiting = this.tickWaiters;
    this.tickWaiters = [];
    for (const w of waiting) w();
  }

  /** Drops heads whose marks are written and that nothing is changing. */
  private evict(): void {
    for (const [k, e] of this.heads) {
      if (!e.loading && e.assigned === e.committed && e.committed === e.marked && !this.unmarked.has(k)) this.heads.delete(k);
      if (this.heads.size <= MAX_HEADS / 2) return;
    }
  }

  /**
   * Applies the intents of every epoch since the last closed one that its marks may not show
   * (those after the last intent's `marked_through`; a mark never moves back: the highest value
   * wins), then records them closed. Until this is done the leader serves nothing.
   */
  private async closeEarlierEpochs(): Promise<void> {
    const q = { prepare: true, isIdempotent: true };
    const closed = num((await this.client.execute(this.cql.closed, [], q)).first()?.["epoch"]);
    const merged = new Map<string, number>();
    const merge = (row: cassandra.types.Row | undefined) => {
      for (const [k, v] of Object.entries((row?.["heads"] ?? {}) as Record<string, unknown>)) merged.set(k, Math.max(merged.get(k) ?? 0, num(v)));
    };
    /** Restore records of ticks that never committed, latest first. */
    const restores: Staged[][] = [];
    for (let e = closed + 1; e < this.epoch; e++) {
      const last = (await this.client.execute(this.cql.lastIntent, [e], q)).first();
      const lastTick = last ? num(last["tick"]) : 0;
      // Ticks run one at a time, so those with no intent yet are the epoch's last ones.
      const cut = (await this.client.execute(this.cql.restoresAfter, [e, lastTick], { ...q, fetchSize: 10_000 })).rows;
      restores.unshift(...cut.map((r) => JSON.parse(r["writes"] as string) as Staged[]));
      if (!last) continue;
      merge(last);
      // An intent of before marked_through (null) is one whose marks went with the next tick: it alone counts.
      const through = last["marked_through"] == null ? lastTick - 1 : num(last["marked_through"]);
      let pageState: string | undefined;
      do {
        const page = await this.client.execute(this.cql.intentsAfter, [e, through], { ...q, fetchSize: 1_000, pageState });
        for (const row of page.rows) merge(row);
        pageState = page.pageState ?? undefined;
      } while (pageState);
    }
    // One after the other, latest tick first: where two of them put back one cell, the earliest
    // (what was committed) is written last, with the highest timestamp. Any write of the deposed
    // leader's that lands after this loses to them by timestamp.
    for (const writes of restores) for (const w of writes) await this.exec(w);
    // Applied, or committed long ago: the closed epochs' records go (they hold replaced texts).
    for (let e = closed + 1; e < this.epoch; e++) await this.exec({ query: this.cql.dropRestores, params: [e] });
    await Promise.all([...merged].map(async ([k, v]) => {
      const cur = num((await this.client.execute(this.cql.mark, [k], q)).first()?.["value"]);
      if (v > cur) await this.exec({ query: this.cql.setMark, params: [k, v] });
    }));
    await this.exec({ query: this.cql.close, params: [this.epoch - 1] });
  }
}
