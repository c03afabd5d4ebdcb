import { describe, expect, it } from "vitest";
import { securityHeaders, sourceAddress } from "./http-guard.js";

describe("sourceAddress", () => {
  it("counts IPv4 (also mapped into IPv6) by address and IPv6 by /64", () => {
    expect(sourceAddress("10.1.2.3")).toBe("10.1.2.3");
    expect(sourceAddress("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(sourceAddress("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(sourceAddress("2001:db8:1:2::9")).toBe(sourceAddress("2001:0db8:0001:0002:aaaa::1"));
    expect(sourceAddress("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceAddress("::1")).toBe("0:0:0:0::/64");
    expect(sourceAddress(undefined)).toBe("unknown");
  });
});

describe("securityHeaders", () => {
  it("forbids framing and sniffing everywhere, and sends HSTS only behind TLS", () => {
    for (const kind of ["page", "api"] as const) {
      const h = securityHeaders(kind, false);
      expect(h["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(h["x-content-type-options"]).toBe("nosniff");
      expect(h["strict-transport-security"]).toBeUndefined();
    }
    expect(securityHeaders("page", true)["strict-transport-security"]).toMatch(/max-age=\d+/);
    expect(securityHeaders("page", false)["content-security-policy"]).not.toContain("unsafe-inline");
  });
});
