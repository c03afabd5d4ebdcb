/**
 * Gathers the calls made in one tick of the event loop into one batch call: a
 * burst of sessions saying Hello at once costs one RPC per tick, not one per
 * session. `run` answers each item of a batch in order; a batch that fails
 * fails each of its calls with the same error. At most `maxBatch` items go in
 * one call; the rest go in the next. With `windowMs`, a batch gathers the calls of
 * that many milliseconds instead of one tick: for calls nobody waits on, where a
 * tick holds too few to be worth a call of their own.
 */
export class TickBatcher<Req, Res> {
  private pending: Array<{ req: Req; resolve(r: Res): void; reject(err: unknown): void }> = [];
  private scheduled = false;

  constructor(
    private readonly run: (items: Req[]) => Promise<Res[]>,
    private readonly maxBatch = 1_000,
    private readonly windowMs = 0,
  ) {}

  call(req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        if (this.windowMs > 0) setTimeout(() => this.flush(), this.windowMs).unref();
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      this.run(batch.map((p) => p.req)).then(
        (results) => batch.forEach((p, i) => (i < results.length ? p.resolve(results[i]!) : p.reject(new Error(`batch answered ${results.length} of ${batch.length} items`)))),
        (err: unknown) => { for (const p of batch) p.reject(err); },
      );
    }
  }
}
