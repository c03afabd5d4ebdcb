import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeSocket as SilentSocket } from "../../test/support/fake-socket.js";
import { ChatClient } from "./client.js";

describe("ChatClient connection attempts", () => {
  afterEach(() => { vi.useRealTimers(); });

  it("gives up on an edge that answers nothing after connectTimeoutMs and tries the next URL", async () => {
    vi.useFakeTimers();
    const sockets: SilentSocket[] = [];
    const client = new ChatClient({
      url: "ws://cut-off/v1/ws",
      fallbackUrls: ["ws://other/v1/ws"],
      token: "t",
      deviceId: "d",
      connectTimeoutMs: 3_000,
      socket: (url) => { const s = new SilentSocket(url); sockets.push(s); return s; },
    });
    const first = client.connect().catch((e: Error) => e);
    await vi.advanceTimersByTimeAsync(2_999);
    expect(sockets.map((s) => s.readyState)).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect((await first) as Error).toBeInstanceOf(Error);
    // The reconnect (after its backoff, at most 375 ms the first time) goes to the fallback.
    await vi.advanceTimersByTimeAsync(500);
    expect(sockets.map((s) => s.url)).toEqual(["ws://cut-off/v1/ws", "ws://other/v1/ws"]);
    await client.close();
  });
});
