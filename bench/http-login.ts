import http from "node:http";

/** One HTTP POST from a given loopback address; the status code (0 if the request failed) and the body. */
function post(url: string, localAddress: string, headers: Record<string, string | number>, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: "POST", localAddress, headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end(body);
  });
}

/** POST /v1/login from a given loopback address, with an optional cookie; the status code (0 if the request failed) and, on 200, the access token. */
export async function login(httpUrl: string, username: string, password: string, localAddress: string, cookie = ""): Promise<{ status: number; token?: string }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (cookie) headers.cookie = cookie;
  const res = await post(`${httpUrl}/v1/login`, localAddress, headers, JSON.stringify({ username, password }));
  return res.status === 200 ? { status: 200, token: (JSON.parse(res.body) as { token: string }).token } : { status: res.status };
}

/** POST /v1/logout: ends the session the access token names (a user who logs in again and again does not pile up sessions). */
export async function logout(httpUrl: string, token: string, localAddress: string): Promise<number> {
  return (await post(`${httpUrl}/v1/logout`, localAddress, { authorization: `Bearer ${token}`, "content-type": "application/json" }, "{}")).status;
}
