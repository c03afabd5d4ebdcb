import http from "node:http";
import https from "node:https";

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Responses are read up to this size; provider answers are small JSON documents. */
const MAX_RESPONSE_BYTES = 256 * 1024;

/**
 * HTTP/1.1 client of one provider: its own keep-alive agents (so `close()` really
 * closes its sockets, and a private CA stays with this provider), and a deadline
 * on the whole exchange rather than on socket idleness.
 */
export class HttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private closed = false;

  constructor(opts: { ca?: string | Buffer; maxSockets?: number } = {}) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64, ca: opts.ca });
  }

  /**
   * One request. Rejects on transport failures (with `name === "TimeoutError"`
   * past `timeoutMs`); any HTTP status resolves.
   */
  request(url: string, opts: { method: string; headers: Record<string, string>; body: string; timeoutMs: number }): Promise<SimpleResponse> {
    if (this.closed) return Promise.reject(Object.assign(new Error("http client closed"), { code: "ERR_CLIENT_CLOSED" }));
    const u = new URL(url);
    const secure = u.protocol === "https:";
    const mod = secure ? https : http;
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, res?: SimpleResponse) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const req = mod.request(
        u,
        {
          method: opts.method,
          headers: { ...opts.headers, "content-length": String(Buffer.byteLength(opts.body)) },
          agent: secure ? this.httpsAgent : this.httpAgent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
          });
          res.on("end", () => finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", (err) => finish(err));
          res.on("aborted", () => finish(Object.assign(new Error("response aborted"), { code: "ECONNRESET" })));
        },
      );
      const timer = setTimeout(() => {
        const err = Object.assign(new Error(`no answer within ${opts.timeoutMs} ms`), { name: "TimeoutError" });
        finish(err);
        req.destroy(err);
      }, opts.timeoutMs);
      req.on("error", (err) => finish(err));
      req.end(opts.body);
    });
  }

  /** Closes idle and active sockets; later requests are refused. */
  close(): void {
    this.closed = true;
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
