import http from "node:http";

/** POST /v1/login from a given loopback address, with an optional cookie; the status code (0 if the request failed). */
export function login(httpUrl: string, username: string, password: string, localAddress: string, cookie = ""): Promise<number> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ username, password });
    const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    if (cookie) headers.cookie = cookie;
    const req = http.request(`${httpUrl}/v1/login`, { method: "POST", localAddress, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end(body);
  });
}
