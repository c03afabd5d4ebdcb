import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ChatClient, TypingUpdate } from "./client.js";
import { TypingIndicators } from "./typing.js";

/** Just enough of a client: TypingIndicators only listens to its typing events. */
function fakeClient() {
  let listener: ((t: TypingUpdate) => void) | undefined;
  const client = { on: (_: "typing", fn: (t: TypingUpdate) => void) => { listener = fn; return () => { listener = undefined; }; } } as unknown as ChatClient;
  return { client, emit: (t: Partial<TypingUpdate>) => listener?.({ conversationId: "c", userId: "u1", username: "alice", expiresInMs: 6_000, ...t }) };
}

describe("TypingIndicators", () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it("shows a typist until the expiry, extended by each newer update, and ended at once by their message", () => {
    const { client, emit } = fakeClient();
    const changes: string[] = [];
    const t = new TypingIndicators(client, (c) => changes.push(`${c}: ${t.label(c)}`));
    emit({});
    expect(t.label("c")).toBe("alice is typing…");
    vi.advanceTimersByTime(5_000);
    emit({}); // still typing: the expiry starts again, no change reported
    vi.advanceTimersByTime(5_000);
    expect(t.label("c")).toBe("alice is typing…");
    vi.advanceTimersByTime(1_000);
    expect(t.label("c")).toBe("");
    emit({ userId: "u2", username: "bob" });
    emit({});
    expect(t.label("c")).toBe("bob and alice are typing…");
    emit({ userId: "u2", expiresInMs: 0 }); // bob's message arrived
    expect(t.in("c")).toEqual(["alice"]);
    expect(changes).toEqual(["c: alice is typing…", "c: ", "c: bob is typing…", "c: bob and alice are typing…", "c: alice is typing…"]);
    t.close();
    vi.advanceTimersByTime(10_000);
    expect(changes).toHaveLength(5);
  });
});
