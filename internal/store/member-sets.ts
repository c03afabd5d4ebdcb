/**
 * Each conversation's member ids as the directory had them when this process last read or
 * wrote them: what the Cassandra log's leader checks acknowledgements and history pages
 * against, instead of a PostgreSQL query per check (docs/scaling.md, "Read amplification").
 *
 * Exact while every membership write goes through this process, which is what the log's
 * single writer gives: only the leader serves, and it calls `changed` after each membership
 * write it commits. The one way around it is a deposed leader that commits a membership change
 * in PostgreSQL before it learns it lost the log (its caller is refused, and a retry comes
 * here and marks it changed); an entry is read again after `ttlMs` so even a change whose
 * retry never comes is seen within that time.
 */
export class MemberSets {
  private readonly sets = new Map<string, { ids: ReadonlySet<string>; at: number }>();
  /** The read in flight per conversation; `changed` drops it, so a read begun before a change never stores what it saw. */
  private readonly loads = new Map<string, Promise<ReadonlySet<string>>>();

  constructor(
    private readonly load: (conversationId: string) => Promise<string[]>,
    private readonly maxSets = 100_000,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  async has(conversationId: string, userId: string): Promise<boolean> {
    return (await this.members(conversationId)).has(userId);
  }

  /**
   * A write of this process changed the members (called once it committed): the next check reads
   * them again. Not the members the write saw: two writes' calls may come in either order.
   */
  changed(conversationId: string): void {
    this.sets.delete(conversationId);
    // A read in flight may have begun before the commit: later checks start their own.
    this.loads.delete(conversationId);
  }

  private async members(conversationId: string): Promise<ReadonlySet<string>> {
    const have = this.sets.get(conversationId);
    if (have && this.now() - have.at < this.ttlMs) return have.ids;
    const inFlight = this.loads.get(conversationId);
    if (inFlight) return inFlight;
    const loading: Promise<ReadonlySet<string>> = this.load(conversationId).then((ids) => {
      const read = new Set(ids);
      // Still the read of record: no change came while it was out.
      if (this.loads.get(conversationId) === loading) this.store(conversationId, read);
      return read;
    }).finally(() => { if (this.loads.get(conversationId) === loading) this.loads.delete(conversationId); });
    this.loads.set(conversationId, loading);
    return loading;
  }

  private store(conversationId: string, ids: ReadonlySet<string>): void {
    this.sets.delete(conversationId);
    if (this.sets.size >= this.maxSets) {
      // The least recently stored go (Map order).
      for (const k of [...this.sets.keys()].slice(0, Math.max(1, Math.floor(this.maxSets / 4)))) this.sets.delete(k);
    }
    this.sets.set(conversationId, { ids, at: this.now() });
  }
}
