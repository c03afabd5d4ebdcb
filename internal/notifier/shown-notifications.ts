import type { ProviderName } from "./provider.js";

/** A device token that was handed a notification. */
export interface ShownDevice {
  deviceId: string;
  provider: ProviderName;
  token: string;
}

/** What a device is told after a read: the conversation's read pointer and what is left unread. */
export interface ReadUpdate {
  conversationId: string;
  readSeq: number;
  unread: number;
}

interface Shown {
  /** Keyed by provider and token. */
  devices: Map<string, ShownDevice>;
  /** The newest seq the notifier heard of in the conversation (the unread count is counted up to it). */
  headSeq: number;
  readSeq: number;
  lastAt: number;
}

export const deviceKey = (d: Pick<ShownDevice, "provider" | "token">) => `${d.provider}\u0000${d.token}`;

/**
 * Which devices show a notification of (user, conversation): the ones a read on
 * another device must update. An entry starts when a provider accepts an alert and
 * ends when a read leaves nothing unread (the update clears it on the device) or
 * after `maxAgeMs` without news (sweep).
 */
export class ShownNotifications {
  private readonly users = new Map<string, Map<string, Shown>>();

  /** A provider accepted an alert of `seq` for the device. Returns the update it is owed at once when a read overtook it. */
  shown(userId: string, conversationId: string, seq: number, device: ShownDevice, readSeq: number, now: number): ReadUpdate | undefined {
    let convs = this.users.get(userId);
    if (!convs) this.users.set(userId, (convs = new Map()));
    let s = convs.get(conversationId);
    if (!s) convs.set(conversationId, (s = { devices: new Map(), headSeq: seq, readSeq: 0, lastAt: now }));
    s.devices.set(deviceKey(device), device);
    s.headSeq = Math.max(s.headSeq, seq);
    s.lastAt = now;
    return readSeq >= seq ? this.read(userId, conversationId, readSeq, now)?.update : undefined;
  }

  /** A newer message of the conversation was notified: it counts as unread on the devices. */
  newer(userId: string, conversationId: string, seq: number): void {
    const s = this.users.get(userId)?.get(conversationId);
    if (s) s.headSeq = Math.max(s.headSeq, seq);
  }

  /**
   * The user read up to `readSeq`: the devices that show the conversation and what to tell
   * them, or nothing when no device shows it or the pointer did not move past what they were told.
   */
  read(userId: string, conversationId: string, readSeq: number, now: number): { devices: ShownDevice[]; update: ReadUpdate } | undefined {
    const convs = this.users.get(userId);
    const s = convs?.get(conversationId);
    if (!convs || !s || readSeq <= s.readSeq) return undefined;
    s.readSeq = readSeq;
    s.lastAt = now;
    const unread = Math.max(0, s.headSeq - readSeq);
    const devices = [...s.devices.values()];
    if (unread === 0) {
      convs.delete(conversationId);
      if (convs.size === 0) this.users.delete(userId);
    }
    return { devices, update: { conversationId, readSeq, unread } };
  }

  /** Forgets entries with no news for `maxAgeMs`. */
  sweep(now: number, maxAgeMs: number): void {
    for (const [userId, convs] of this.users) {
      for (const [id, s] of convs) if (now - s.lastAt > maxAgeMs) convs.delete(id);
      if (convs.size === 0) this.users.delete(userId);
    }
  }
}
