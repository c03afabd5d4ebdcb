/**
 * What one internal call costs in CPU, unary against multiplexed (multiplex.proto), through the
 * product's own client (`call`) and server (`implement`), client and server in this process:
 *   node dist/bench/grpc-call-cost.js [calls=20000]
 * Prints CPU µs per call (both sides together) and calls per second, one at a time and 16 at once.
 */
import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { ChatServiceClient, ChatServiceService } from "../gen/chat/internal/v1/chat.js";
import { call, makeClient } from "../internal/grpc/client.js";
import { implement, type AsyncService } from "../internal/grpc/handler.js";
import { multiplex } from "../internal/grpc/multiplex-client.js";
import { startGrpcServer } from "../internal/grpc/server.js";
import { Logger } from "../internal/log/logger.js";

const N = Number(process.argv[2] ?? 20_000);
const impl = new Proxy({}, { get: () => async () => ({ deliveredSeq: 1, readSeq: 1 }) }) as AsyncService<typeof ChatServiceService>;
const server = await startGrpcServer({ host: "127.0.0.1", port: 0, credentials: ServerCredentials.createInsecure(), services: [{ definition: ChatServiceService, implementation: implement(ChatServiceService, impl, new Logger("bench", "error")) }] });
const unary = makeClient(ChatServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
const streamed = makeClient(ChatServiceClient, [`127.0.0.1:${server.port}`], credentials.createInsecure());
multiplex(streamed);
const req = { actor: { userId: "u".repeat(36), deviceId: "phone" }, ack: { conversationId: "c".repeat(36), seq: 1, kind: 1 } };

async function run(client: ChatServiceClient, concurrency: number): Promise<{ usPerCall: number; perSecond: number }> {
  let left = N;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) await call(client, client.ack, req);
  }));
  const used = process.cpuUsage(cpu);
  return { usPerCall: Math.round((used.user + used.system) / N), perSecond: Math.round(N / ((performance.now() - t0) / 1000)) };
}

console.log("| calls at once | unary: CPU µs per call | multiplexed | unary: calls/s | multiplexed |");
console.log("|---:|---:|---:|---:|---:|");
for (const concurrency of [1, 16]) {
  await run(unary, concurrency); // warm-up
  await run(streamed, concurrency);
  const [u, m] = [await run(unary, concurrency), await run(streamed, concurrency)];
  console.log(`| ${concurrency} | ${u.usPerCall} | ${m.usPerCall} | ${u.perSecond} | ${m.perSecond} |`);
}
unary.close();
streamed.close();
server.server.forceShutdown();
