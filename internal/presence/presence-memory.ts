import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { PresenceStatus, type PresenceUpdate } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { tooManyDevices, type Presence, type PresenceConfig, type PublishFn } from "./presence.js";

interface DeviceEntry {
  route: Route;
  lastBeatMs: number;
}

interface UserEntry {
  devices: Map<string, DeviceEntry>;
  lastActiveMs: number;
  /** The status subscribers last saw. */
  published: PresenceStatus;
  offlineTimer?: NodeJS.Timeout;
}

/**
 * Online state in memory: one process holds every user (embedded profile).
 * A user is online while any device has heartbeated within the timeout; going
 * offline waits out the grace period, so a drop and reconnect inside it changes
 * nothing anyone sees.
 *
 * Recovery: a restart of the presence process loses everything, while the edges keep
 * their sessions. Edges heartbeat every device they hold with the full Route, and a
 * heartbeat for a device this process does not know re-registers it (as RedisPresence
 * does), so routes and statuses come back within one heartbeat period. Subscriptions
 * are not carried by heartbeats: they come back when the clients subscribe again.
 */
export class MemoryPresence implements Presence {
  private readonly users = new Map<string, UserEntry>();
  private readonly subscribers = new Map<string, Map<string, Route>>();
  /**
   * Sessions disconnected or replaced within the timeout (session id -> when forgotten):
   * a heartbeat already in flight for one of them must not bring it back.
   */
  private readonly gone = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly config: PresenceConfig,
    private readonly publish: PublishFn,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, Math.floor(config.timeoutMs / 3)));
    this.sweeper.unref();
  }

  async connect(route: Route, takeover: boolean): Promise<Route | undefined> {
    const user = this.user(route.userId);
    const existing = user.devices.get(route.deviceId);
    if (existing && existing.route.sessionId !== route.sessionId) {
      if (!takeover) throw new ChatError(ErrorCode.ERROR_CODE_DEVICE_IN_USE, "this device id is in use by another live session");
    }
    const max = this.config.maxDevicesPerUser ?? 0;
    if (!existing && max > 0 && user.devices.size >= max) throw tooManyDevices(max);
    const replaced = existing && existing.route.sessionId !== route.sessionId ? existing.route : undefined;
    // The replaced session is over: its subscriptions go with it (its edge's late disconnect
    // finds another session on the device and changes nothing, so it cannot clean them up).
    if (replaced) this.forget(replaced);
    user.devices.set(route.deviceId, { route, lastBeatMs: this.now() });
    user.lastActiveMs = this.now();
    this.changed(route.userId, user);
    return replaced;
  }

  async disconnect(route: Route): Promise<void> {
    const user = this.users.get(route.userId);
    const existing = user?.devices.get(route.deviceId);
    // Another session holds the device now: this one was replaced and already forgotten.
    if (existing && existing.route.sessionId !== route.sessionId) return;
    this.forget(route);
    if (!user || !existing) return;
    user.devices.delete(route.deviceId);
    user.lastActiveMs = this.now();
    this.changed(route.userId, user);
  }

  async heartbeat(routes: Route[]): Promise<string[]> {
    const now = this.now();
    const restored = new Set<string>();
    for (const r of routes) {
      const user = this.users.get(r.userId);
      const d = user?.devices.get(r.deviceId);
      if (d) {
        if (d.route.sessionId === r.sessionId) d.lastBeatMs = now;
      } else if (!this.gone.has(r.sessionId)) {
        // Unknown device whose edge still holds the session: this process restarted (or the
        // sweep dropped a device whose edge was slow). The heartbeat carries the full route:
        // register it again and bring the user back online.
        const u = this.user(r.userId);
        u.devices.set(r.deviceId, { route: r, lastBeatMs: now });
        u.lastActiveMs = now;
        this.changed(r.userId, u);
        restored.add(r.userId);
        continue;
      }
      if (user) user.lastActiveMs = now;
    }
    return [...restored];
  }

  async routes(userIds: string[]): Promise<Route[]> {
    const out: Route[] = [];
    for (const id of userIds) for (const d of this.users.get(id)?.devices.values() ?? []) out.push(d.route);
    return out;
  }

  async query(userIds: string[]): Promise<PresenceUpdate[]> {
    return userIds.map((id) => this.status(id));
  }

  async subscribe(subscriber: Route, userIds: string[]): Promise<PresenceUpdate[]> {
    for (const id of userIds) {
      let subs = this.subscribers.get(id);
      if (!subs) this.subscribers.set(id, (subs = new Map()));
      subs.set(subscriber.sessionId, subscriber);
    }
    return userIds.map((id) => this.status(id));
  }

  async unwatch(userId: string, watcherId?: string): Promise<void> {
    if (!watcherId) {
      this.subscribers.delete(userId);
      return;
    }
    const subs = this.subscribers.get(userId);
    for (const [session, route] of subs ?? []) if (route.userId === watcherId) subs!.delete(session);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const u of this.users.values()) clearTimeout(u.offlineTimer);
  }

  private status(userId: string): PresenceUpdate {
    const u = this.users.get(userId);
    const online = u?.published === PresenceStatus.PRESENCE_STATUS_ONLINE;
    return { userId, status: online ? PresenceStatus.PRESENCE_STATUS_ONLINE : PresenceStatus.PRESENCE_STATUS_OFFLINE, lastActiveAtMs: u?.lastActiveMs ?? 0 };
  }

  private user(id: string): UserEntry {
    let u = this.users.get(id);
    if (!u) this.users.set(id, (u = { devices: new Map(), lastActiveMs: 0, published: PresenceStatus.PRESENCE_STATUS_OFFLINE }));
    return u;
  }

  private changed(userId: string, user: UserEntry): void {
    if (user.devices.size > 0) {
      clearTimeout(user.offlineTimer);
      user.offlineTimer = undefined;
      if (user.published !== PresenceStatus.PRESENCE_STATUS_ONLINE) this.emit(userId, user, PresenceStatus.PRESENCE_STATUS_ONLINE);
      return;
    }
    if (user.published === PresenceStatus.PRESENCE_STATUS_ONLINE && !user.offlineTimer) {
      user.offlineTimer = setTimeout(() => {
        user.offlineTimer = undefined;
        if (user.devices.size === 0) this.emit(userId, user, PresenceStatus.PRESENCE_STATUS_OFFLINE);
      }, this.config.graceMs);
      user.offlineTimer.unref();
    }
  }

  private emit(userId: string, user: UserEntry, status: PresenceStatus): void {
    user.published = status;
    const subs = [...(this.subscribers.get(userId)?.values() ?? [])];
    if (subs.length > 0) this.publish({ userId, status, lastActiveAtMs: user.lastActiveMs }, subs);
  }

  /** A session that ended: no subscriptions, and no resurrection by a late heartbeat. */
  private forget(route: Route): void {
    this.unsubscribeAll(route);
    this.gone.set(route.sessionId, this.now() + this.config.timeoutMs);
  }

  private unsubscribeAll(route: Route): void {
    for (const [id, subs] of this.subscribers) {
      subs.delete(route.sessionId);
      if (subs.size === 0) this.subscribers.delete(id);
    }
  }

  /** Devices whose edge stopped heartbeating (edge crashed) are dropped. */
  private sweep(): void {
    const now = this.now();
    for (const [sessionId, until] of this.gone) if (until <= now) this.gone.delete(sessionId);
    const cutoff = now - this.config.timeoutMs;
    for (const [id, user] of this.users) {
      for (const [deviceId, d] of user.devices) {
        if (d.lastBeatMs < cutoff) {
          user.devices.delete(deviceId);
          this.unsubscribeAll(d.route);
          this.changed(id, user);
        }
      }
    }
  }
}
