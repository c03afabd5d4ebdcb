import { execFileSync, spawnSync } from "node:child_process";
import net from "node:net";

/**
 * Hosts on this machine: network namespaces joined by a bridge in the root namespace,
 * each with its own address and port space, so a "host" can be cut off by dropping its
 * link while its processes keep running (a partition, not a crash). Needs root and `ip`.
 *
 *   root namespace: bridge BRIDGE, GATEWAY (the servers host)
 *   namespace <prefix>-hN: veth <prefix>-hN-n, SUBNET.1N  <->  veth <prefix>-hN-r on the bridge
 */
export const SUBNET = "10.79.0";
export const GATEWAY = `${SUBNET}.1`;
const PREFIX = "mcn";
const BRIDGE = `${PREFIX}br0`;

export interface Host {
  name: string;
  address: string;
  /** The root side of the host's veth pair: setting it down cuts the host off. */
  link: string;
  /** Runs a command inside the host's namespace (ProcessSpec.wrapper). */
  wrapper: string[];
}

/** Why these tests cannot run here, or undefined when they can. */
export function unsupported(): string | undefined {
  if (process.getuid?.() !== 0) return "not root: network namespaces need CAP_NET_ADMIN";
  if (spawnSync("ip", ["-V"]).status !== 0) return "`ip` (iproute2) is missing";
  return undefined;
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Like ip() for teardown: whatever is already gone stays gone. */
function ipQuiet(...args: string[]): void {
  spawnSync("ip", args, { stdio: "ignore" });
}

/** Removes every namespace, veth and the bridge this module makes, a crashed run's included. */
export function teardownHosts(): void {
  const namespaces = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const line of namespaces.split("\n")) {
    const name = line.split(" ")[0];
    if (!name?.startsWith(`${PREFIX}-h`)) continue;
    // A crashed run's services outlive it inside the namespace (and keep it alive after its name is gone).
    const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "";
    for (const pid of pids.split("\n").filter(Boolean)) { try { process.kill(Number(pid), "SIGKILL"); } catch { /* already gone */ } }
    ipQuiet("netns", "delete", name);
  }
  // Deleting a namespace deletes its end of each veth and with it the pair; the rest goes explicitly.
  const links = spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout ?? "";
  for (const m of links.matchAll(new RegExp(`^\\d+: (${PREFIX}-h\\d+-r)[@:]`, "gm"))) ipQuiet("link", "delete", m[1]!);
  ipQuiet("link", "delete", BRIDGE);
}

/** Makes `count` hosts, after clearing what an earlier run left behind. */
export function setupHosts(count: number): Host[] {
  teardownHosts();
  ip("link", "add", BRIDGE, "type", "bridge");
  ip("addr", "add", `${GATEWAY}/24`, "dev", BRIDGE);
  ip("link", "set", BRIDGE, "up");
  const hosts: Host[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `${PREFIX}-h${i}`;
    const address = `${SUBNET}.${10 + i}`;
    const [root, inner] = [`${name}-r`, `${name}-n`];
    ip("netns", "add", name);
    ip("link", "add", root, "type", "veth", "peer", "name", inner);
    ip("link", "set", inner, "netns", name);
    ip("link", "set", root, "master", BRIDGE);
    ip("link", "set", root, "up");
    ip("-n", name, "addr", "add", `${address}/24`, "dev", inner);
    ip("-n", name, "link", "set", inner, "up");
    ip("-n", name, "link", "set", "lo", "up");
    hosts.push({ name, address, link: root, wrapper: ["ip", "netns", "exec", name] });
  }
  return hosts;
}

/** Cuts a host off the network (down) or puts it back (up); its processes are left alone. */
export function setLink(host: Host, state: "up" | "down"): void {
  ip("link", "set", host.link, state);
}

export interface Forwarder {
  /**
   * Cuts `address` off one forwarded port, or restores it (blocked false): its open connections
   * are reset and new ones refused. A partial partition: the host still reaches everything else.
   */
  block(address: string, port: number, blocked: boolean): void;
  close(): Promise<void>;
}

/**
 * Forwards GATEWAY:<port> to 127.0.0.1:<port> for each port: the test servers
 * (scripts/servers/servers.sh) listen on loopback only, which no namespace reaches.
 */
export async function forwardToLoopback(ports: number[]): Promise<Forwarder> {
  const links = new Set<{ port: number; from: string; inbound: net.Socket; outbound: net.Socket }>();
  const blocked = new Set<string>();
  const servers = await Promise.all(ports.map((port) => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer((inbound) => {
      const from = inbound.remoteAddress ?? "";
      if (blocked.has(`${from}:${port}`)) { inbound.resetAndDestroy(); return; }
      const outbound = net.connect(port, "127.0.0.1");
      const link = { port, from, inbound, outbound };
      links.add(link);
      for (const s of [inbound, outbound]) {
        s.on("close", () => links.delete(link));
        // Either side failing ends both: the client sees a dropped connection, as it would without us.
        s.on("error", () => { inbound.destroy(); outbound.destroy(); });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    server.once("error", reject);
    server.listen(port, GATEWAY, () => resolve(server));
  })));
  return {
    block(address, port, block) {
      if (!block) { blocked.delete(`${address}:${port}`); return; }
      blocked.add(`${address}:${port}`);
      for (const l of links) if (l.from === address && l.port === port) { l.inbound.resetAndDestroy(); l.outbound.destroy(); }
    },
    async close() {
      for (const l of links) { l.inbound.destroy(); l.outbound.destroy(); }
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}
