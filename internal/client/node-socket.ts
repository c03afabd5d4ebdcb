import WebSocket from "ws";
import type { SocketFactory, SocketLike } from "./client.js";

/** The client's socket factory for Node (the `ws` package). */
export const nodeSocket: SocketFactory = (url, protocols) => new WebSocket(url, protocols, { perMessageDeflate: false }) as unknown as SocketLike;
