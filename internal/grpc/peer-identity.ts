import type { ServerSurfaceCall } from "@grpc/grpc-js/build/src/server-call.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";

const SPIFFE_PREFIX = "spiffe://meshchat.local/";

/** The mesh identity in the caller's certificate (URI SAN spiffe://meshchat.local/<service>), or null. */
export function peerIdentity(call: ServerSurfaceCall): string | null {
  const auth = call.getAuthContext?.();
  const san = auth?.sslPeerCertificate?.subjectaltname;
  if (!san) return null;
  for (const part of san.split(",").map((s) => s.trim())) {
    if (part.startsWith("URI:") && part.slice(4).startsWith(SPIFFE_PREFIX)) return part.slice(4 + SPIFFE_PREFIX.length);
  }
  return null;
}

export function authorizePeer(call: ServerSurfaceCall, policy: Readonly<Record<string, readonly string[]>>, method: string): void {
  const id = peerIdentity(call);
  if (id === null || !policy[id]?.includes(method)) {
    throw new ChatError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, `caller ${id ?? "(no mesh identity)"} may not call ${method}`);
  }
}
