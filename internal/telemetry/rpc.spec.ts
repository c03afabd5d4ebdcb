import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { isServerError, peerAttributes, serverAttributes, statusName } from "./rpc.js";

describe("gRPC span conventions", () => {
  it("marks a server span ERROR only for the server's own failures", () => {
    for (const c of [status.UNKNOWN, status.DEADLINE_EXCEEDED, status.UNIMPLEMENTED, status.INTERNAL, status.UNAVAILABLE, status.DATA_LOSS]) expect(isServerError(c), status[c]).toBe(true);
    for (const c of [status.OK, status.ALREADY_EXISTS, status.PERMISSION_DENIED, status.INVALID_ARGUMENT, status.NOT_FOUND, status.UNAUTHENTICATED, status.RESOURCE_EXHAUSTED, status.FAILED_PRECONDITION, status.ABORTED]) expect(isServerError(c), status[c]).toBe(false);
  });

  it("names status codes for metric labels", () => {
    expect(statusName(0)).toBe("OK");
    expect(statusName(status.PERMISSION_DENIED)).toBe("PERMISSION_DENIED");
    expect(statusName(99)).toBe("UNKNOWN");
  });

  it("reads server.address and server.port from channel targets", () => {
    expect(serverAttributes("127.0.0.1:5000")).toEqual({ "server.address": "127.0.0.1", "server.port": 5000 });
    expect(serverAttributes("dns:chat.mesh:7000")).toEqual({ "server.address": "chat.mesh", "server.port": 7000 });
    expect(serverAttributes("ipv4:10.0.0.1:7001,10.0.0.2:7001")).toEqual({ "server.address": "10.0.0.1", "server.port": 7001 });
  });

  it("reads network.peer.* from grpc-js peers", () => {
    expect(peerAttributes("ipv4:127.0.0.1:51234")).toEqual({ "network.peer.address": "127.0.0.1", "network.peer.port": 51234 });
    expect(peerAttributes("[::1]:4000")).toEqual({ "network.peer.address": "::1", "network.peer.port": 4000 });
    expect(peerAttributes("")).toEqual({});
  });
});
