import http from "node:http";
import https from "node:https";

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP(S) request with a timeout and an optional CA (for relays with a private CA). */
export function httpsRequest(url: string, opts: { method: string; headers: Record<string, string>; body: string; timeoutMs: number; ca?: string | Buffer }): Promise<SimpleResponse> {
  const u = new URL(url);
  const mod = u.protocol === "http:" ? http : https;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method: opts.method, headers: { ...opts.headers, "content-length": Buffer.byteLength(opts.body) }, ca: opts.ca, timeout: opts.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("request timed out"), { name: "TimeoutError" })));
    req.on("error", reject);
    req.end(opts.body);
  });
}
