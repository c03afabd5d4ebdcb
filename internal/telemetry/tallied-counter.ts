import type { Attributes, Meter, MetricOptions } from "@opentelemetry/api";

interface Cell {
  total: number;
  readonly attributes: Attributes;
}

/**
 * A monotonic counter for the hot paths (a frame, a statement): adds are summed here per
 * attribute set and reported when metrics are read, as an observable counter with the same
 * name, so exporters see the same counter. The SDK's own `Counter.add` hashes the attributes
 * and walks its storage on every add: in a profile of the production bench that was the
 * largest JS item of the edge and of the message store (~4-5% of their CPU; docs/performance.md,
 * "Counters summed in place").
 *
 * An add looks its set up by the attributes' keys and values in the order given, a string built
 * without sorting; the first time an order is seen it is tied to the set's cell, so the same set
 * given in another order still counts once.
 */
export class TalliedCounter {
  private static readonly made = new WeakMap<Meter, Map<string, TalliedCounter>>();

  /**
   * The counter of this name on this meter, made once: two observable counters of one name would
   * each report their own sums for the same sets, and the reader keeps only one of them.
   */
  static of(meter: Meter, name: string, options: MetricOptions = {}): TalliedCounter {
    let byName = TalliedCounter.made.get(meter);
    if (!byName) TalliedCounter.made.set(meter, (byName = new Map()));
    let c = byName.get(name);
    if (!c) byName.set(name, (c = new TalliedCounter(meter, name, options)));
    return c;
  }

  /** By the attributes as given (keys in their order). */
  private readonly cells = new Map<string, Cell>();
  /** By the attributes with their keys sorted: one cell per set, whatever the order given. */
  private readonly sets = new Map<string, Cell>();

  private constructor(meter: Meter, name: string, options: MetricOptions) {
    meter.createObservableCounter(name, options).addCallback((result) => {
      for (const cell of this.sets.values()) result.observe(cell.total, cell.attributes);
    });
  }

  add(value: number, attributes: Attributes = {}): void {
    let key = "";
    for (const k in attributes) key += `${k}\u0000${String(attributes[k])}\u0001`;
    let cell = this.cells.get(key);
    if (!cell) {
      const sorted = Object.keys(attributes).sort().map((k) => `${k}\u0000${String(attributes[k])}`).join("\u0001");
      cell = this.sets.get(sorted);
      if (!cell) this.sets.set(sorted, (cell = { total: 0, attributes: { ...attributes } }));
      this.cells.set(key, cell);
    }
    cell.total += value;
  }
}
