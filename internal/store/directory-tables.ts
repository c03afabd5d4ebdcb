import type { Session } from "../../gen/chat/internal/v1/store.js";
import type { BlockStore } from "./blocks.js";
import type { PrivacySettings, PrivacyStore } from "./privacy.js";
import type { RotateRequest, SessionStore } from "./sessions.js";

/**
 * The directory's side tables (sessions, privacy settings, block lists) as an SQL store
 * serves them: each table is its own small store (sessions-*.ts, privacy-*.ts, blocks-*.ts,
 * one file per engine) and the Store answers for it by passing the call through. One base
 * for SqlStore and SqliteStore, so a new method of these interfaces is passed through once.
 */
export abstract class DirectoryTables implements SessionStore, PrivacyStore, BlockStore {
  protected constructor(
    private readonly sessions: SessionStore,
    private readonly privacy: PrivacyStore,
    private readonly blockList: BlockStore,
  ) {}

  createSession(session: Session, refreshHash: Uint8Array, maxLive?: number): Promise<string[]> { return this.sessions.createSession(session, refreshHash, maxLive); }
  rotateSession(req: RotateRequest) { return this.sessions.rotateSession(req); }
  endSession(userId: string, sessionId: string, nowMs: number): Promise<boolean> { return this.sessions.endSession(userId, sessionId, nowMs); }
  setPassword(userId: string, passwordHash: string, keepSessionId: string, nowMs: number): Promise<string[]> { return this.sessions.setPassword(userId, passwordHash, keepSessionId, nowMs); }
  checkSessions(sessionIds: string[], nowMs: number): Promise<boolean[]> { return this.sessions.checkSessions(sessionIds, nowMs); }
  privacySettings(userIds: string[]): Promise<PrivacySettings[]> { return this.privacy.privacySettings(userIds); }
  setPrivacySettings(userId: string, change: PrivacySettings): Promise<PrivacySettings> { return this.privacy.setPrivacySettings(userId, change); }
  presenceHidden(userIds: string[]): Promise<string[]> { return this.privacy.presenceHidden(userIds); }
  setBlocked(userId: string, blockedId: string, blocked: boolean, atMs: number) { return this.blockList.setBlocked(userId, blockedId, blocked, atMs); }
  blocks(userId: string) { return this.blockList.blocks(userId); }
  blockPairs(userIds: string[]) { return this.blockList.blockPairs(userIds); }
  deletedAmong(userIds: string[]): Promise<string[]> { return this.blockList.deletedAmong(userIds); }
  deleteAccount(userId: string, nowMs: number) { return this.blockList.deleteAccount(userId, nowMs); }
}
