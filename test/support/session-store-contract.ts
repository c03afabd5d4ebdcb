import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RotateOutcome, type Session } from "../../gen/chat/internal/v1/store.js";
import { hashRefreshToken } from "../../internal/auth/refresh-tokens.js";
import type { Store } from "../../internal/store/store.js";

const DAY = 24 * 3600 * 1000;

/**
 * The session part of the store (SessionStore), written once and run against every
 * backend: rotation swaps the refresh hash only for the current token, an old token
 * ends the session, concurrent rotations of one token let exactly one through, and a
 * password change ends every session but the caller's in the same transaction.
 */
export function sessionStoreContract(name: string, open: () => Promise<Store>, close: (store: Store) => Promise<void> = (s) => s.close()): void {
  describe(`sessions: ${name}`, () => {
    let store: Store;
    let userId: string;
    let username: string;
    const now = Date.now();

    const start = async (deviceId = "phone"): Promise<{ session: Session; token: string }> => {
      const id = randomUUID();
      const token = `${id}.${randomUUID()}`;
      const session = { id, userId, username, deviceId, createdAtMs: now, lastUsedAtMs: now, expiresAtMs: now + 30 * DAY, endedAtMs: 0 };
      await store.createSession(session, hashRefreshToken(token));
      return { session, token };
    };
    const rotate = (sessionId: string, presented: string, next: string, at = now + 1_000) =>
      store.rotateSession({ sessionId, presentedHash: hashRefreshToken(presented), nextHash: hashRefreshToken(next), nowMs: at, nextExpiresAtMs: at + 30 * DAY });

    beforeAll(async () => {
      store = await open();
      userId = randomUUID();
      username = `s${randomUUID().slice(0, 8)}`;
      await store.createUser({ id: userId, username, passwordHash: "old-hash", createdAtMs: now });
    });
    afterAll(() => close(store));

    it("rotates the current token, then ends the session when the old one comes back", async () => {
      const { session, token } = await start();
      expect(await store.checkSessions([session.id], now)).toEqual([true]);
      const r = await rotate(session.id, token, "t2");
      expect(r.outcome).toBe(RotateOutcome.ROTATE_OUTCOME_ROTATED);
      expect(r.session).toMatchObject({ id: session.id, userId, username, deviceId: "phone", lastUsedAtMs: now + 1_000, endedAtMs: 0 });
      expect((await rotate(session.id, "t2", "t3")).outcome).toBe(RotateOutcome.ROTATE_OUTCOME_ROTATED);
      // The first token again: someone kept a copy. The session ends, and the newest token dies with it.
      expect((await rotate(session.id, token, "t4")).outcome).toBe(RotateOutcome.ROTATE_OUTCOME_REUSED);
      expect((await rotate(session.id, "t3", "t5")).outcome).toBe(RotateOutcome.ROTATE_OUTCOME_ENDED);
      expect(await store.checkSessions([session.id], now)).toEqual([false]);
    });

    it("lets one of two concurrent rotations of a token through; the other ends the session", async () => {
      const { session, token } = await start();
      const outcomes = (await Promise.all([rotate(session.id, token, "a"), rotate(session.id, token, "b")])).map((r) => r.outcome).sort();
      expect(outcomes).toEqual([RotateOutcome.ROTATE_OUTCOME_ROTATED, RotateOutcome.ROTATE_OUTCOME_REUSED].sort());
      expect(await store.checkSessions([session.id], now)).toEqual([false]);
    });

    it("refuses an expired or unknown session without ending anything else", async () => {
      const { session, token } = await start();
      expect((await rotate(session.id, token, "x", now + 31 * DAY)).outcome).toBe(RotateOutcome.ROTATE_OUTCOME_EXPIRED);
      expect(await store.checkSessions([session.id], now + 31 * DAY)).toEqual([false]);
      expect(await store.checkSessions([session.id], now)).toEqual([true]);
      expect((await rotate(randomUUID(), token, "x")).outcome).toBe(RotateOutcome.ROTATE_OUTCOME_UNKNOWN);
    });

    it("ends one session of its own user only", async () => {
      const { session } = await start();
      expect(await store.endSession(randomUUID(), session.id, now)).toBe(false);
      expect(await store.checkSessions([session.id], now)).toEqual([true]);
      expect(await store.endSession(userId, session.id, now)).toBe(true);
      expect(await store.endSession(userId, session.id, now)).toBe(false);
      expect(await store.checkSessions([session.id, randomUUID()], now)).toEqual([false, false]);
    });

    it("a password change ends every other session of the user, not the caller's", async () => {
      const [mine, laptop, tablet] = [await start("phone"), await start("laptop"), await start("tablet")];
      const ended = await store.setPassword(userId, "new-hash", mine.session.id, now);
      expect(ended).toEqual(expect.arrayContaining([laptop.session.id, tablet.session.id]));
      expect(ended).not.toContain(mine.session.id);
      expect(await store.checkSessions([mine.session.id, laptop.session.id, tablet.session.id], now)).toEqual([true, false, false]);
      expect((await store.getUserByName(username))?.passwordHash).toBe("new-hash");
    });
  });
}
