/**
 * The physical ceiling of a Node WebSocket edge on this box: a bare `ws` server
 * that pairs sockets ("pair:<id>:s" / "pair:<id>:r") and forwards every frame of
 * a sender to its recipient, and otherwise just holds sockets open.
 * Usage: node dist/bench/baseline/relay.js PORT
 */
import { WebSocketServer, type WebSocket } from "ws";

const port = Number(process.argv[2] ?? 0);
const recipients = new Map<string, WebSocket>();
const wss = new WebSocketServer({ port, host: "127.0.0.1", perMessageDeflate: false });
wss.on("connection", (ws) => {
  let target: WebSocket | undefined;
  let pair = "";
  ws.on("message", (data, isBinary) => {
    if (target) return target.send(data, { binary: isBinary });
    const text = data.toString();
    if (text.startsWith("pair:")) {
      const [, id, role] = text.split(":");
      pair = id!;
      if (role === "r") recipients.set(pair, ws);
      else target = recipients.get(pair);
      if (!target && role === "s") {
        // The recipient may register a moment later.
        const wait = setInterval(() => { target = recipients.get(pair); if (target) clearInterval(wait); }, 5);
      }
    }
  });
});
wss.on("listening", () => process.stdout.write(`relay ready ${(wss.address() as { port: number }).port}\n`));
process.on("SIGTERM", () => { wss.close(); process.exit(0); });
