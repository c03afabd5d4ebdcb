/**
 * Byte limits of messages inside the mesh, in one place. Every gRPC client and
 * server refuses a message larger than GRPC_MAX_MESSAGE_BYTES, so whatever one
 * call carries in bulk (an Append or Deliver batch, a ReadLog or History page)
 * is cut at BATCH_MAX_BYTES: a batch or page never fails whole because it grew,
 * and one user's large messages can never push another user's into a refused call.
 */

/** gRPC's max send and receive message size, on every channel and server (64 MiB). */
export const GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The byte budget of one batch (Append, Deliver): an eighth of the gRPC limit,
 * so that a reply echoing a batch with per-member positions stays far below it.
 * A batch always carries at least one item, and one legal message is far
 * smaller than this.
 */
export const BATCH_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The byte budget of one page (ReadLog, History). Smaller than a batch: a
 * history page goes to the device as one WebSocket frame (up to about three
 * times larger in proto3 JSON), which must fit well inside the session's send
 * buffer (MAX_BUFFERED_BYTES, 8 MiB by default), and a catch-up page is held in
 * the edge while it streams. A page always carries at least one event, so a
 * reader always progresses.
 */
export const PAGE_MAX_BYTES = 2 * 1024 * 1024;

/**
 * Bytes one item adds to a batch besides its text: ids, timestamps, positions
 * and protobuf framing. An overestimate keeps the sum on the safe side.
 */
export const ITEM_OVERHEAD_BYTES = 256;

/** The UTF-8 size of a text, which is what it occupies in a protobuf message. */
export function textBytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
