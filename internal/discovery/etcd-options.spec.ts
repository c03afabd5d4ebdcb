import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { etcdClientOptions } from "./etcd-keyspace.js";

describe("etcd client options", () => {
  const ca = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "etcd-ca-")), "ca.pem");
  fs.writeFileSync(ca, "not read for the checks below");

  it("refuses TLS to an IP address without the certificate's name (TLS sends a name; Node 26 refuses an address)", () => {
    expect(() => etcdClientOptions(["https://10.0.0.7:2379"], { caFile: ca })).toThrow(/ETCD_SERVER_NAME/);
    expect(() => etcdClientOptions(["https://[::1]:2379"], { caFile: ca })).toThrow(/ETCD_SERVER_NAME/);
  });

  it("checks the certificate against ETCD_SERVER_NAME when given, and leaves names alone", () => {
    expect(etcdClientOptions(["https://10.0.0.7:2379"], { caFile: ca, serverName: "etcd" }).grpcOptions).toMatchObject({ "grpc.ssl_target_name_override": "etcd" });
    expect(etcdClientOptions(["https://etcd.meshchat.svc:2379"], { caFile: ca }).grpcOptions).toBeUndefined();
    expect(etcdClientOptions(["http://127.0.0.1:2379"]).credentials).toBeUndefined();
  });
});
