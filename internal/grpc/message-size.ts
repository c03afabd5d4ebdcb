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
 * The byte budget of one batch or page: an eighth of the gRPC limit, so that a
 * reply echoing a batch with per-member positions, or one item allowed past the
 * budget (a page always carries at least one event, so a reader always
 * progresses), stays far below it. Small enough that a page streams to a device
 * without holding much in the edge.
 */
export const BATCH_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Bytes one item adds to a batch besides its text: ids, timestamps, positions
 * and protobuf framing. An overestimate keeps the sum on the safe side.
 */
export const ITEM_OVERHEAD_BYTES = 256;

/** The UTF-8 size of a text, which is what it occupies in a protobuf message. */
export function textBytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
