import type { ChatClient, TypingUpdate } from "./client.js";

/**
 * Who is typing where, for a UI: each indicator shows until its expiry (the edge's
 * TYPING_EXPIRY_MS, carried in every TypingUpdate), a newer one extends it, and the
 * typist's message ends it. `onChange` runs with the conversation whose list changed.
 */
export class TypingIndicators {
  private readonly typing = new Map<string, Map<string, { username: string; timer: ReturnType<typeof setTimeout> }>>();
  private readonly off: () => void;

  constructor(client: ChatClient, private readonly onChange: (conversationId: string) => void) {
    this.off = client.on("typing", (t) => this.apply(t));
  }

  /** Usernames (or user ids when the name is unknown) typing in the conversation now, in the order they started. */
  in(conversationId: string): string[] {
    return [...(this.typing.get(conversationId)?.values() ?? [])].map((t) => t.username);
  }

  /** "alice is typing…", "alice and bob are typing…", or "" when nobody is. */
  label(conversationId: string): string {
    const names = this.in(conversationId);
    if (names.length === 0) return "";
    if (names.length === 1) return `${names[0]} is typing…`;
    return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
  }

  close(): void {
    this.off();
    for (const users of this.typing.values()) for (const t of users.values()) clearTimeout(t.timer);
    this.typing.clear();
  }

  private apply(t: TypingUpdate): void {
    let users = this.typing.get(t.conversationId);
    const previous = users?.get(t.userId);
    if (previous) clearTimeout(previous.timer);
    if (t.expiresInMs <= 0) {
      if (!previous) return;
      users!.delete(t.userId);
      if (users!.size === 0) this.typing.delete(t.conversationId);
      this.onChange(t.conversationId);
      return;
    }
    if (!users) this.typing.set(t.conversationId, (users = new Map()));
    const timer = setTimeout(() => this.apply({ ...t, expiresInMs: 0 }), t.expiresInMs);
    (timer as { unref?: () => void }).unref?.();
    users.set(t.userId, { username: previous?.username || t.username || t.userId, timer });
    if (!previous) this.onChange(t.conversationId);
  }
}
