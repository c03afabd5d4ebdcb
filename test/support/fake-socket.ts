import type { SocketLike } from "../../internal/client/client.js";

/**
 * A socket in memory for the client's unit tests: it starts connecting, sends nowhere, and
 * closing it fails it with 1006 (as browsers and `ws` do). Tests extend it with an edge.
 */
export class FakeSocket implements SocketLike {
  binaryType = "arraybuffer";
  readyState = 0;
  readonly protocol = "";
  onopen: SocketLike["onopen"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  onmessage: SocketLike["onmessage"] = null;
  constructor(readonly url: string) {}
  send(_data: Uint8Array): void {}
  close(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: "" });
  }
}
