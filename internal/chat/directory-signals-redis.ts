import type { Redis } from "ioredis";
import { redisClient, throttledReporter } from "../redis/client.js";
import { parseDirectoryChange, type DirectoryChange, type DirectorySignals } from "./directory-signals.js";

/**
 * Directory changes over Redis pub/sub on `<prefix>directory`. Delivery is at
 * most once (a chat instance that is disconnected from Redis misses signals),
 * which is why the directory cache also has a TTL: the signal makes changes
 * visible everywhere at once, the TTL bounds how long a missed one can last.
 */
export class RedisDirectorySignals implements DirectorySignals {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly channel: string;
  private readonly listeners: Array<(change: DirectoryChange) => void> = [];

  constructor(url: string, prefix: string, onError: (err: unknown) => void = () => {}) {
    const report = throttledReporter(onError);
    this.pub = redisClient(url, { report });
    this.sub = redisClient(url, { report, offlineQueue: true });
    this.channel = `${prefix}directory`;
    this.sub.on("message", (channel: string, text: string) => {
      const change = channel === this.channel ? parseDirectoryChange(text) : undefined;
      if (change) for (const fn of this.listeners) fn(change);
    });
    void this.sub.subscribe(this.channel).catch(report);
  }

  /**
   * Resolves once subscribed and once the publisher is connected (tests and
   * start-up wait for it): the publisher has no offline queue, so a change sent
   * before its connection is up would be dropped.
   */
  async ready(): Promise<void> {
    await Promise.all([this.sub.subscribe(this.channel), connected(this.pub)]);
  }

  async changed(change: DirectoryChange): Promise<void> {
    await this.pub.publish(this.channel, JSON.stringify(change)).catch(() => {});
  }

  onChanged(listener: (change: DirectoryChange) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.pub.disconnect();
    this.sub.disconnect();
  }
}

function connected(redis: Redis): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve) => redis.once("ready", () => resolve()));
}
