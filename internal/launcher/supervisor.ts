/**
 * When a service of the launcher dies, it is started again after a pause that
 * doubles with each crash (from `baseDelayMs` up to `maxDelayMs`). A service that
 * crashes `maxCrashes` times within `windowMs` is given up on: the launcher stops
 * everything and exits non-zero, loudly, instead of restarting it for ever.
 */
export interface RestartPolicyOptions {
  /** RESTART_BASE_DELAY_MS: the pause before the first restart. Default 500. */
  baseDelayMs: number;
  /** RESTART_MAX_DELAY_MS: the longest pause. Default 30000. */
  maxDelayMs: number;
  /** RESTART_MAX_CRASHES within RESTART_WINDOW_MS: then give up. Defaults 5 in 60000. */
  maxCrashes: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = { baseDelayMs: 500, maxDelayMs: 30_000, maxCrashes: 5, windowMs: 60_000 };

export type RestartDecision = { restart: true; delayMs: number; crashes: number } | { restart: false; crashes: number };

/** The crash history of each service and what to do about the next crash. */
export class RestartPolicy {
  private readonly crashes = new Map<string, number[]>();

  constructor(private readonly opts: RestartPolicyOptions = DEFAULT_RESTART_POLICY, private readonly now: () => number = Date.now) {}

  get windowMs(): number {
    return this.opts.windowMs;
  }

  onCrash(name: string): RestartDecision {
    const t = this.now();
    const recent = (this.crashes.get(name) ?? []).filter((at) => t - at < this.opts.windowMs);
    recent.push(t);
    this.crashes.set(name, recent);
    if (recent.length >= this.opts.maxCrashes) return { restart: false, crashes: recent.length };
    const delayMs = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (recent.length - 1));
    return { restart: true, delayMs, crashes: recent.length };
  }
}
