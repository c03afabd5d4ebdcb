import { describe, expect, it } from "vitest";
import { preview } from "./preview.js";
import { apnsPayload, classifyApnsResponse } from "./provider-apns.js";
import { classifyFcmResponse, parseFcmError } from "./provider-fcm.js";
import { apnsCollapseId, retryAfterMs, transportFailure, truncateUtf8 } from "./provider.js";

describe("retryAfterMs", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  it("reads seconds and HTTP dates, ignores garbage", () => {
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs(["3"], now)).toBe(3_000);
    expect(retryAfterMs("Thu, 01 Jan 2026 12:00:30 GMT", now)).toBe(30_000);
    expect(retryAfterMs("Thu, 01 Jan 2026 11:00:00 GMT", now)).toBe(0);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
    expect(retryAfterMs("-5", now)).toBeUndefined();
  });
});

describe("transportFailure", () => {
  it("retries network trouble and timeouts, fails certificate errors", () => {
    expect(transportFailure(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }))).toMatchObject({ kind: "retry", reason: expect.stringMatching(/^ECONNREFUSED/) });
    expect(transportFailure(Object.assign(new Error("late"), { name: "TimeoutError" }))).toMatchObject({ kind: "retry", reason: expect.stringMatching(/^timeout/) });
    expect(transportFailure(Object.assign(new Error("self-signed"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }))).toMatchObject({ kind: "failed" });
    expect(transportFailure("weird")).toMatchObject({ kind: "retry" });
  });
});

describe("UTF-8 limits", () => {
  it("truncateUtf8 never splits a code point", () => {
    expect(truncateUtf8("abc", 10)).toBe("abc");
    expect(truncateUtf8("é🙂x", 2)).toBe("é");
    expect(truncateUtf8("é🙂x", 5)).toBe("é");
    expect(truncateUtf8("é🙂x", 6)).toBe("é🙂");
  });
  it("apnsCollapseId keeps short keys and hashes long ones to a stable 43 bytes", () => {
    expect(apnsCollapseId("g:team")).toBe("g:team");
    const long = "d:" + "x".repeat(80);
    expect(apnsCollapseId(long)).toHaveLength(43);
    expect(apnsCollapseId(long)).toBe(apnsCollapseId(long));
    expect(apnsCollapseId(long)).not.toBe(apnsCollapseId(long + "y"));
    expect(apnsCollapseId("é".repeat(32))).toBe("é".repeat(32)); // exactly 64 bytes
    expect(apnsCollapseId("é".repeat(33))).toHaveLength(43);
  });
});

describe("preview", () => {
  it("cuts by code points with an ellipsis, only when needed", () => {
    expect(preview("hello", 5)).toBe("hello");
    expect(preview("hello!", 5)).toBe("hello…");
    expect(preview("🎉🎉🎉", 2)).toBe("🎉🎉…");
    expect(preview("a\n\n b\t", 10)).toBe("a b");
    // Cut again to less, a cut text gives what one cut gives (chat cuts first, the notifier after).
    const long = "🎉 ".repeat(3_000);
    for (const max of [1, 120, 999, 1_000]) expect(preview(preview(long, 1_000), max)).toBe(preview(long, max));
  });
});

describe("FCM response classification", () => {
  const err = (status: number, body: unknown) => classifyFcmResponse(status, parseFcmError(JSON.stringify(body)), {});
  it("follows the FCM v1 error codes", () => {
    expect(err(404, { error: { code: 404, status: "NOT_FOUND", details: [{ errorCode: "UNREGISTERED" }] } }).kind).toBe("dead-token");
    expect(err(400, { error: { code: 400, status: "INVALID_ARGUMENT", details: [{ errorCode: "UNREGISTERED" }] } }).kind).toBe("dead-token");
    expect(err(400, { error: { code: 400, status: "INVALID_ARGUMENT", message: "The registration token is not a valid FCM registration token" } }).kind).toBe("dead-token");
    expect(err(400, { error: { code: 400, status: "INVALID_ARGUMENT", message: "Invalid value at 'message.data'" } }).kind).toBe("failed");
    expect(err(429, { error: { code: 429, status: "RESOURCE_EXHAUSTED" } }).kind).toBe("retry");
    expect(err(502, "<html>bad gateway</html>").kind).toBe("retry");
    expect(err(403, { error: { code: 403, status: "PERMISSION_DENIED", details: [{ errorCode: "SENDER_ID_MISMATCH" }] } })).toMatchObject({ kind: "failed", reason: expect.stringContaining("SENDER_ID_MISMATCH") });
  });
});

describe("APNs", () => {
  it("classifies status and reason", () => {
    expect(classifyApnsResponse(410, "ExpiredToken", {}).kind).toBe("dead-token");
    expect(classifyApnsResponse(400, "BadDeviceToken", {}).kind).toBe("dead-token");
    expect(classifyApnsResponse(400, "BadTopic", {}).kind).toBe("failed");
    expect(classifyApnsResponse(429, "TooManyProviderTokenUpdates", { "retry-after": "10" })).toMatchObject({ kind: "retry", retryAfterMs: 10_000 });
    expect(classifyApnsResponse(503, "Shutdown", {}).kind).toBe("retry");
  });
  it("shortens the alert body of a payload over 4 KB instead of losing the push", () => {
    const payload = apnsPayload({ token: "t", title: "t", body: "ü".repeat(3_000), collapseKey: "c", data: { conversation_id: "c" } });
    expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(4096);
    const parsed = JSON.parse(payload) as { aps: { alert: { body: string } }; conversation_id: string };
    expect(parsed.aps.alert.body.endsWith("…")).toBe(true);
    expect(parsed.conversation_id).toBe("c");
  });
});
