import type { Route } from "../../gen/chat/internal/v1/presence.js";
import type { PresenceUpdate } from "../../gen/chat/v1/client.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

export interface PresenceConfig {
  /** PRESENCE_TIMEOUT_MS: a device with no heartbeat for this long is gone. Default 45000. */
  timeoutMs: number;
  /** PRESENCE_GRACE_MS: a user must stay without devices this long to turn offline (no flapping). Default 5000. */
  graceMs: number;
  /**
   * MAX_DEVICES_PER_USER: devices of one user connected at once. Another device past it is
   * refused with QUOTA_EXCEEDED (a device already connected may always reconnect or take over
   * its own session). Default 10; 0 or unset = no cap.
   */
  maxDevicesPerUser?: number;
}

/** The refusal of a device past MAX_DEVICES_PER_USER (both implementations). */
export const tooManyDevices = (max: number): ChatError =>
  new ChatError(ErrorCode.ERROR_CODE_QUOTA_EXCEEDED, `at most ${max} devices of one account are connected at once: disconnect another one first`);

/** Called once per status change with the routes of the sessions subscribed to that user. */
export type PublishFn = (update: PresenceUpdate, subscribers: Route[]) => void;

/**
 * Who is online, where each device is connected, and who watches whom.
 * A user is online while any device has heartbeated within the timeout; going
 * offline waits out the grace period, so a drop and reconnect inside it changes
 * nothing anyone sees (and publishes nothing). One file per implementation:
 * - `presence-memory.ts`: one process holds every user (embedded profile).
 * - `presence-redis.ts`: any number of presence instances sharing one Redis (production).
 */
export interface Presence {
  /**
   * Registers a device's session. Another live session on the same device id: DEVICE_IN_USE unless takeover, then returns
   * the route it replaced. A new device of a user who has maxDevicesPerUser connected: QUOTA_EXCEEDED, nothing changed.
   */
  connect(route: Route, takeover: boolean): Promise<Route | undefined>;
  /** Forgets the session (if it is still the device's current one) and its subscriptions. */
  disconnect(route: Route): Promise<void>;
  /**
   * Keeps the given sessions alive; edges send every device they hold, in batches. A heartbeat
   * for a device presence lost (it restarted, its Redis lost data, or the sweep dropped a slow
   * edge's device) registers it again: answers those devices' users (once each), whose routes
   * thereby changed.
   */
  heartbeat(routes: Route[]): Promise<string[]>;
  /** Routes of every live device of these users. */
  routes(userIds: string[]): Promise<Route[]>;
  /** Current status of each user, in order. */
  query(userIds: string[]): Promise<PresenceUpdate[]>;
  /** Subscribes the session to later changes of these users; returns their current status. */
  subscribe(subscriber: Route, userIds: string[]): Promise<PresenceUpdate[]>;
  /**
   * Ends every subscription to the user (they hid their presence): later changes reach nobody until
   * someone subscribes again. With `watcherId`, only that user's sessions' subscriptions (a block).
   */
  unwatch(userId: string, watcherId?: string): Promise<void>;
  /** Stops timers and releases connections; no calls after it. */
  close(): Promise<void>;
}
