import type { Logger } from "../log/logger.js";

export interface Stoppable {
  /** Stops in the service's own order (health NOT_SERVING, close streams, servers, backends). */
  stop(deadlineMs: number): Promise<void>;
}

/**
 * Runs a service until SIGTERM/SIGINT, then drains it within a hard deadline:
 * past the deadline the process exits anyway, so an orchestrator never waits on
 * a stuck drain.
 */
export async function runUntilSignal(name: string, log: Logger, deadlineMs: number, start: () => Promise<Stoppable>): Promise<void> {
  let service: Stoppable;
  try {
    service = await start();
  } catch (err) {
    log.error(`${name} failed to start`, { err });
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${name} draining`, { signal });
    const hard = setTimeout(() => {
      log.error(`${name} did not drain in time; exiting`);
      process.exit(1);
    }, deadlineMs + 1_000);
    hard.unref();
    service.stop(deadlineMs).then(
      () => { log.info(`${name} stopped`); process.exit(0); },
      (err: unknown) => { log.error(`${name} stop failed`, { err }); process.exit(1); },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("unhandledRejection", (err) => log.error("unhandled rejection", { err }));
}
