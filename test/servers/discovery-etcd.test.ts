import { randomUUID } from "node:crypto";
import { Etcd3, type Campaign } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { campaignLease, EtcdDiscovery } from "../../internal/discovery/discovery-etcd.js";
import { EtcdKeyspace } from "../../internal/discovery/etcd-keyspace.js";
import type { Instance } from "../../internal/discovery/discovery.js";
import { Logger } from "../../internal/log/logger.js";
import { waitFor } from "../support/wait.js";

const hosts = (process.env.ETCD_ENDPOINTS ?? "").split(",");
const log = new Logger("test", "error");

describe("etcd discovery and leases (real etcd)", () => {
  let prefix: string;
  let raw: Etcd3;
  const opened: EtcdDiscovery[] = [];
  const open = async () => {
    const space = await EtcdKeyspace.open({ endpoints: hosts, prefix, leaseTtlSeconds: 2 }, log);
    const d = await EtcdDiscovery.open(space);
    opened.push(d);
    // The tests reach the process's lease directly: keys put under it live and die with the process.
    return Object.assign(d, { session: space.session });
  };
  beforeAll(() => {
    prefix = `/meshchat-test/${randomUUID()}/`;
    raw = new Etcd3({ hosts });
  });
  afterAll(async () => {
    for (const d of opened) await d.close().catch(() => {});
    await raw.delete().prefix(prefix).exec();
    raw.close();
  });

  it("a leader's lease vouches for a time before which no other candidate is elected", async () => {
    const a = await open();
    const b = await open();
    const won = await a.lead("log-vouch", "a", () => {});
    await waitFor("a keepalive answered", () => won.heldUntil() > performance.now());
    const vouched = won.heldUntil();
    // a goes silent without resigning: its campaign's lease stops its keepalives and revokes
    // nothing, as a process cut off or killed.
    const [campaign] = (a as unknown as { campaigns: Campaign[] }).campaigns;
    (campaignLease(campaign!) as unknown as { close(): void }).close();
    await b.lead("log-vouch", "b", () => {});
    const electedAt = performance.now();
    expect(electedAt).toBeGreaterThanOrEqual(vouched);
    // And not by a hair only: etcd held the key about a lease time past a's last keepalive.
    expect(electedAt - vouched).toBeLessThan(10_000);
  });

  it("a leader that resigns vouches for nothing from then on", async () => {
    const a = await open();
    const won = await a.lead("log-resign", "a", () => {});
    await waitFor("a keepalive answered", () => won.heldUntil() > performance.now());
    await a.close();
    expect(won.heldUntil()).toBe(0);
  });

  it("sees instances join and leave through its watch", async () => {
    const a = await open();
    const b = await open();
    const seen: Instance[][] = [];
    b.watch("chat", (now) => seen.push(now));
    await a.register("chat", { id: "chat-a", address: "127.0.0.1:1" });
    await waitFor("b sees chat-a", () => b.instances("chat").some((i) => i.id === "chat-a"));
    await a.deregister();
    await waitFor("b sees chat-a leave", () => !b.instances("chat").some((i) => i.id === "chat-a"));
    expect(seen.at(-1)!.some((i) => i.id === "chat-a")).toBe(false);
  });

  it("drops a dead process's keys when its lease expires", async () => {
    const a = await open();
    const b = await open();
    await a.register("edge", { id: "edge-dead", address: "127.0.0.1:2" });
    await a.session.put(`${prefix}leased/u-dead/d1`, "held by edge-dead");
    await waitFor("b sees edge-dead", () => b.instances("edge").some((i) => i.id === "edge-dead"));
    const t0 = Date.now();
    a.session.release(); // keep-alives stop, nothing is revoked: as if the process died
    await waitFor("edge-dead gone", () => !b.instances("edge").some((i) => i.id === "edge-dead"), 20_000);
    expect(Date.now() - t0).toBeGreaterThan(1_000);
    expect(await raw.getAll().prefix(`${prefix}leased/u-dead/`).keys()).toEqual([]);
  });

  it("on losing its lease tells its listeners, takes a new one and writes every key again", async () => {
    const a = await open();
    const b = await open();
    await a.register("chat", { id: "chat-lost", address: "127.0.0.1:3" });
    await a.session.put(`${prefix}leased/u-lost/d1`, "held by chat-lost");
    let lost = 0;
    let restored = 0;
    a.session.onLost(() => lost++);
    a.session.onRestored(() => restored++);
    const id = await a.session.leaseId();
    // Revoke a's lease behind its back (what etcd does when keep-alives stop reaching it).
    await raw.leaseClient.leaseRevoke({ ID: id! });
    await waitFor("b sees chat-lost leave", () => !b.instances("chat").some((i) => i.id === "chat-lost"));
    await waitFor("lease loss noticed and restored", () => lost === 1 && restored === 1, 20_000);
    await waitFor("b sees chat-lost again", () => b.instances("chat").some((i) => i.id === "chat-lost"));
    expect(await raw.getAll().prefix(`${prefix}leased/u-lost/`).keys()).toEqual([`${prefix}leased/u-lost/d1`]);
    expect(await a.session.leaseId()).not.toBe(id);
  });
});
