import type http from "node:http";
import { ChatError } from "../errors/chat-error.js";

/** Request bodies of the edge's API (sign-up, log-in, sessions) are small JSON objects. */
const MAX_BODY_BYTES = 16 * 1024;

/** application/json, with or without parameters (charset=utf-8). */
export function isJson(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]!.trim().toLowerCase() === "application/json";
}

export async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw ChatError.invalid("request body too large");
    chunks.push(chunk as Buffer);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch {
    throw ChatError.invalid("body must be a JSON object");
  }
}

/** A string field of a body; anything else reads as "" (the service says what is missing). */
export function field(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  return typeof v === "string" ? v : "";
}
