/**
 * A load-generator worker process (forked by bench/run.ts). It holds at most a
 * few thousand sockets (open files are capped at 20,000 per process here),
 * spreads them over 127.0.0.x source addresses (ephemeral ports are per
 * address pair), and speaks the product's protocol directly with the generated
 * codec: the client library's per-session conveniences (timers, retries) would
 * be measured along with the server otherwise.
 */
import { build } from "hdr-histogram-js";
import WebSocket from "ws";
import { ClientFrame, ServerFrame } from "../gen/chat/v1/client.js";
import { login } from "./http-login.js";
import { keepSlowest } from "./slowest.js";
import { sleep } from "../internal/run/sleep.js";

export type WorkerCommand =
  | { cmd: "sessions"; url: string; tokens: string[]; count: number; devicePrefix: string; sources: number; heartbeatMs: number; bare: boolean }
  | { cmd: "pairs"; url: string; pairs: Array<{ senderToken: string; recipientToken: string; conversationId: string }>; steps: Array<{ rate: number; seconds: number }>; textBytes: number; relay: boolean }
  | { cmd: "group"; url: string; senderToken: string; memberTokens: string[]; devicesPerMember: number; conversationId: string; messages: number; intervalMs: number }
  | { cmd: "attack"; url: string; httpUrl: string; token: string; conversationIds: string[]; sessions: number; textChars: number; seconds: number; loginUsername: string; loginConcurrency: number }
  | { cmd: "ready" }
  | { cmd: "close" };

export type WorkerReport =
  | { kind: "progress"; done: number; total: number }
  | { kind: "sessions-ready"; count: number; ms: number; retries: number }
  | { kind: "step"; rate: number; sent: number; delivered: number; seconds: number; p50: number; p99: number; p999: number; max: number; errors: number; slowest: Array<{ atMs: number; ms: number }>; frames: number }
  | { kind: "group"; deliveries: number; messages: number; p50: number; p99: number; allDevicesP50: number; allDevicesP99: number }
  | { kind: "attack"; sends: number; sendsAccepted: number; sendsRefused: number; logins: number; loginsRefused: number }
  | { kind: "ready" }
  /** A pairs run's sessions are connected and caught up: its load starts now. */
  | { kind: "load-start" }
  | { kind: "error"; message: string };

/**
 * Sends this worker process has made, over all its runs: the number of the next one's ref and
 * client_msg_id. A run that started again from 1 would send the last run's client_msg_ids, and
 * the store would answer them as duplicates (nothing new stored).
 */
let sendSeq = 0;

const send = (r: WorkerReport) => process.send!(r);
const sockets: WebSocket[] = [];
const timers: NodeJS.Timeout[] = [];

function encode(f: Partial<ClientFrame>): Buffer {
  return Buffer.from(ClientFrame.encode(ClientFrame.create(f)).finish());
}

/** A client's heartbeat (ref 0: unanswered), as every session of the product's client sends one. */
const HEARTBEAT = encode({ ref: 0, kind: { $case: "heartbeat", value: {} } });

function open(url: string, source: number, protocol: string[] = ["meshchat.v1.proto"]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol, { perMessageDeflate: false, localAddress: `127.0.0.${1 + (source % 250)}` });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    sockets.push(ws);
  });
}

/** Hello, then wait for Synced (catch-up done). */
function hello(ws: WebSocket, token: string, deviceId: string, cursor = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const f = ServerFrame.decode(data);
      if (f.kind?.$case === "synced") { ws.off("message", onMessage); resolve(f.kind.value.pos); }
      if (f.kind?.$case === "error") { ws.off("message", onMessage); reject(new Error(f.kind.value.message)); }
    };
    ws.on("message", onMessage);
    ws.send(encode({ ref: 1, kind: { $case: "hello", value: { token, deviceId, cursor, takeover: true } } }));
  });
}

async function sessions(c: Extract<WorkerCommand, { cmd: "sessions" }>): Promise<void> {
  const t0 = Date.now();
  const hb: Buffer | string = c.bare ? "hb" : HEARTBEAT;
  let done = 0;
  let retries = 0;
  /**
   * As the product's client does: a connect the server turned away as "later" (408, seen now and
   * then in the 19,000-session storm; 429; 503) or that the kernel refused is tried again after a
   * growing, jittered pause. Counted and reported, not hidden: each is a device that had to ask
   * twice.
   */
  const connectRetrying = async (attempt: () => Promise<WebSocket>): Promise<WebSocket> => {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        const retryable = /Unexpected server response: (408|429|503)|ECONNRESET|ECONNREFUSED/.test((err as Error).message);
        if (!retryable || n >= 5) throw err;
        retries++;
        if (process.env.BENCH_VERBOSE) process.stderr.write(`${c.url}: ${(err as Error).message}; asking again\n`);
        await sleep(250 * 2 ** n * (0.5 + Math.random()));
      }
    }
  };
  const concurrency = 200;
  let next = 0;
  const one = async () => {
    while (next < c.count) {
      const i = next++;
      const ws = await connectRetrying(async () => {
        const ws = await open(c.url, i % c.sources, c.bare ? [] : undefined);
        if (!c.bare) await hello(ws, c.tokens[i % c.tokens.length]!, `${c.devicePrefix}-${i}`);
        return ws;
      });
      // Heartbeats start at once, like a real client: connecting 19,000 sessions takes
      // longer than the edge lets a silent session live.
      const jitter = Math.random() * c.heartbeatMs;
      timers.push(setTimeout(() => { ws.send(hb); timers.push(setInterval(() => ws.readyState === ws.OPEN && ws.send(hb), c.heartbeatMs)); }, jitter));
      done++;
      if (done % 500 === 0) send({ kind: "progress", done, total: c.count });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  send({ kind: "sessions-ready", count: done, ms: Date.now() - t0, retries });
}

/**
 * Open-loop load: each step sends at a fixed total rate whatever the replies do,
 * and measures sender frame out -> recipient frame in (timestamp in the text).
 */
async function pairs(c: Extract<WorkerCommand, { cmd: "pairs" }>): Promise<void> {
  const senders: WebSocket[] = [];
  /** Every session of the run (not the relay's bare sockets), for their heartbeats. */
  const runSessions: WebSocket[] = [];
  let delivered = 0;
  let errors = 0;
  /** WebSocket frames of the step both ways (sends, Sent, events, receipts): what an edge handles for a message. */
  let frames = 0;
  let hist = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
  const pad = "x".repeat(Math.max(0, c.textBytes - 20));
  // The few slowest deliveries and when they were sent (from the step's start): is a tail spread or one moment?
  let slowest: Array<{ atMs: number; ms: number }> = [];
  let stepStart = 0;
  const onDelivery = (text: string) => {
    const sentAt = Number(text.slice(0, text.indexOf("|")));
    if (!Number.isFinite(sentAt)) return;
    const ms = performance.timeOrigin + performance.now() - sentAt;
    hist.recordValue(Math.max(1, Math.round(ms * 10)));
    slowest = keepSlowest(slowest, { atMs: Math.round(sentAt - performance.timeOrigin - stepStart), ms: Math.round(ms) }, 5);
    delivered++;
  };
  for (const [i, p] of c.pairs.entries()) {
    if (c.relay) {
      // Baseline: a bare ws relay pairs sockets by the first text frame "pair:<id>:<role>".
      const s = await open(c.url, i, []);
      const r = await open(c.url, i + 1, []);
      s.send(`pair:${i}:s`);
      r.send(`pair:${i}:r`);
      r.on("message", (d: Buffer) => onDelivery(d.toString("utf8")));
      senders.push(s);
    } else {
      const s = await open(c.url, i);
      const r = await open(c.url, i + 1);
      await hello(s, p.senderToken, `bench-s-${i}-${Date.now()}`, 0);
      await hello(r, p.recipientToken, `bench-r-${i}-${Date.now()}`, 0);
      s.on("message", (d: Buffer) => { frames++; const f = ServerFrame.decode(d); if (f.kind?.$case === "error") errors++; });
      r.on("message", (d: Buffer) => {
        frames++;
        const f = ServerFrame.decode(d);
        if (f.kind?.$case === "event" && f.kind.value.kind?.$case === "message") onDelivery(f.kind.value.kind.value.text);
      });
      senders.push(s);
      runSessions.push(s, r);
    }
  }
  // Heartbeats, as the product's client sends them: a recipient only reads, and the edge
  // closes a session silent for three heartbeat intervals (45 s), so without them every
  // recipient was cut off ~45 s into a run, and the later steps' deliveries went nowhere.
  // Not counted in `frames` (ref 0: the edge does not answer them).
  timers.push(setInterval(() => { for (const ws of runSessions) if (ws.readyState === ws.OPEN) ws.send(HEARTBEAT); }, 15_000));
  await sleep(500);
  send({ kind: "load-start" });
  for (const step of c.steps) {
    hist = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
    delivered = 0;
    errors = 0;
    frames = 0;
    slowest = [];
    let sent = 0;
    const total = step.rate * step.seconds;
    const t0 = performance.now();
    stepStart = t0;
    // Ticks of 5 ms: send what the schedule says is due, round robin over the pairs.
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * step.rate));
        while (sent < due) {
          const k = sent % senders.length;
          const text = `${performance.timeOrigin + performance.now()}|${pad}`;
          const ws = senders[k]!;
          if (c.relay) ws.send(text);
          else ws.send(encode({ ref: ++sendSeq, kind: { $case: "send", value: { conversationId: c.pairs[k]!.conversationId, clientMsgId: `b${process.pid}-${sendSeq}`, text, firstSend: true } } }));
          sent++;
          frames++;
        }
        if (sent >= total) { clearInterval(tick); resolve(); }
      }, 5);
    });
    // Let in-flight messages land (bounded).
    const drainUntil = performance.now() + 5_000;
    while (delivered < sent && performance.now() < drainUntil) await sleep(20);
    const seconds = (performance.now() - t0) / 1000;
    const q = (p: number) => hist.getValueAtPercentile(p) / 10;
    send({ kind: "step", rate: step.rate, sent, delivered, seconds, p50: q(50), p99: q(99), p999: q(99.9), max: hist.maxValue / 10, errors, slowest, frames });
  }
}

/** One sender, a group of members each online on 1-2 devices: time until every device has each message. */
async function group(c: Extract<WorkerCommand, { cmd: "group" }>): Promise<void> {
  const perMessage = new Map<number, { sentAt: number; got: number; last: number }>();
  const all = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
  const complete = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
  const devices = c.memberTokens.length * c.devicesPerMember;
  let deliveries = 0;
  let i = 0;
  for (const token of c.memberTokens) {
    for (let d = 0; d < c.devicesPerMember; d++) {
      const ws = await open(c.url, i++);
      await hello(ws, token, `bench-g-${d}-${Date.now()}-${i}`, 0);
      ws.on("message", (data: Buffer) => {
        const f = ServerFrame.decode(data);
        if (f.kind?.$case !== "event" || f.kind.value.kind?.$case !== "message") return;
        const n = Number(f.kind.value.kind.value.text.split("|")[1]);
        const m = perMessage.get(n);
        if (!m) return;
        const lat = performance.timeOrigin + performance.now() - m.sentAt;
        all.recordValue(Math.max(1, Math.round(lat * 10)));
        deliveries++;
        if (++m.got === devices) complete.recordValue(Math.max(1, Math.round(lat * 10)));
      });
    }
  }
  const sender = await open(c.url, i + 1);
  await hello(sender, c.senderToken, `bench-gs-${Date.now()}`, 0);
  for (let n = 0; n < c.messages; n++) {
    const sentAt = performance.timeOrigin + performance.now();
    perMessage.set(n, { sentAt, got: 0, last: 0 });
    sender.send(encode({ ref: n + 1, kind: { $case: "send", value: { conversationId: c.conversationId, clientMsgId: `g${process.pid}-${n}`, text: `${sentAt}|${n}`, firstSend: true } } }));
    await sleep(c.intervalMs);
  }
  const until = Date.now() + 10_000;
  while (deliveries < c.messages * devices && Date.now() < until) await sleep(20);
  send({ kind: "group", deliveries, messages: c.messages, p50: all.getValueAtPercentile(50) / 10, p99: all.getValueAtPercentile(99) / 10, allDevicesP50: complete.getValueAtPercentile(50) / 10, allDevicesP99: complete.getValueAtPercentile(99) / 10 });
}

/**
 * The attacks of the security issue at once, for `seconds`: sessions of one user
 * firing the largest legal messages into its groups without waiting for replies
 * (what the per-user byte limit and fair sequencing are for), and wrong-password
 * logins against one account from many source addresses (what the login limits
 * and back-off are for).
 */
async function attack(c: Extract<WorkerCommand, { cmd: "attack" }>): Promise<void> {
  const text = "\u{1F600}".repeat(c.textChars);
  const until = Date.now() + c.seconds * 1000;
  let sends = 0;
  let sendsAccepted = 0;
  let sendsRefused = 0;
  let logins = 0;
  let loginsRefused = 0;
  const firing = Array.from({ length: c.sessions }, async (_, k) => {
    const ws = await open(c.url, 100 + k);
    await hello(ws, c.token, `attack-${k}-${Date.now()}`, 0);
    ws.on("message", (d: Buffer) => {
      const f = ServerFrame.decode(d);
      if (f.kind?.$case === "sent") sendsAccepted++;
      if (f.kind?.$case === "error") sendsRefused++;
    });
    for (let n = 0; Date.now() < until; n++) {
      // As fast as the socket takes them, but never more than a few MB queued in this process.
      if (ws.bufferedAmount > 4 * 1024 * 1024) { await new Promise((r) => setTimeout(r, 5)); continue; }
      ws.send(encode({ ref: n + 2, kind: { $case: "send", value: { conversationId: c.conversationIds[(n + k) % c.conversationIds.length]!, clientMsgId: `x${process.pid}-${k}-${n}`, text, firstSend: true } } }));
      sends++;
      await new Promise((r) => setImmediate(r));
    }
  });
  const guessing = Array.from({ length: c.loginConcurrency }, async (_, k) => {
    for (let n = 0; Date.now() < until; n++) {
      const { status } = await login(c.httpUrl, c.loginUsername, `wrong guess ${k}-${n}`, `127.0.0.${10 + ((k + n) % 200)}`);
      logins++;
      if (status === 429) loginsRefused++;
    }
  });
  await Promise.all([...firing, ...guessing]);
  send({ kind: "attack", sends, sendsAccepted, sendsRefused, logins, loginsRefused });
}

process.on("message", (m: WorkerCommand) => {
  const run = async () => {
    switch (m.cmd) {
      case "sessions": return sessions(m);
      case "pairs": return pairs(m);
      case "group": return group(m);
      case "attack": return attack(m);
      case "ready": return send({ kind: "ready" });
      case "close":
        for (const t of timers) { clearTimeout(t); clearInterval(t); }
        for (const ws of sockets) ws.terminate();
        setTimeout(() => process.exit(0), 100);
    }
  };
  run().catch((err: Error) => send({ kind: "error", message: err.message }));
});
