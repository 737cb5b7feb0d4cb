// Peer: wireguard-go (Debian's userspace WireGuard), one process on en1 and one on the gateway
// host, over the same hosts, home NAT and links as GSRA. en1 reaches in1's address `target`
// through the tunnel; the gateway forwards to the LAN and in1 answers through its default route.
import { waitTunnelUp } from './tunnel-up.ts';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, type HostName, type Lab } from '../lab/lab.ts';
import { run, waitFor } from '../lab/exec.ts';
import { wgTransferBytes } from './path-check.ts';

/**
 * Not WireGuard's usual 51820: that lies in gsra-gateway's reserved port range (40000-59999 by
 * default, the lab's), and both GSRA daemons queue that range to their engines (gatewayRules: UDP
 * to GGR with such a destination port; agentRules: UDP from GGR with such a source port), which
 * drop packets of no reservation — the handshake would never get through.
 */
export const WG_PORT = 61820;
const WG_EN = '172.31.0.2';
const WG_GW = '172.31.0.1';
/**
 * 1440, the largest MTU whose packets fit a 1500-byte link after WireGuard's 60 bytes (IPv4 20,
 * UDP 8, header and tag 32), instead of wireguard-go's default 1420, so a 1400-byte UDP datagram
 * (1428 bytes of IP) crosses unfragmented like on every other path.
 */
export const WG_MTU = 1440;
/** wireguard-go's control socket lives in /var/run/wireguard/<ifname>.sock, outside any netns. */
const WG_SOCKET_DIR = '/var/run/wireguard';

export interface Wireguard {
  /** Bytes in and out of en1's tunnel (its only peer), as wireguard-go counts them. */
  counter(): Promise<number>;
  mtu: number;
}

/** Interface names unique to this process: the control sockets of every namespace share one directory. */
const IFS = { en1: `wgb${process.pid}e`, gw: `wgb${process.pid}g` };
let cleanupInstalled = false;

/** Removes the control sockets a SIGKILLed wireguard-go leaves behind (it removes them on SIGTERM). */
export function removeWireguardSockets(): void {
  for (const i of Object.values(IFS)) rmSync(join(WG_SOCKET_DIR, `${i}.sock`), { force: true });
}

export async function startWireguard(lab: Lab, target: string): Promise<Wireguard> {
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    // On exit, and on the signals the lab handles (it SIGKILLs wireguard-go, which then leaves
    // its socket, and re-raises the signal: 'exit' does not run then).
    process.on('exit', removeWireguardSockets);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, removeWireguardSockets);
  }
  const key = async () => {
    const priv = (await run(['wg', 'genkey'], { timeoutMs: 5000 })).stdout.trim();
    const pub = (await run(['wg', 'pubkey'], { input: priv + '\n', timeoutMs: 5000 })).stdout.trim();
    return { priv, pub };
  };
  const kEn = await key();
  const kGw = await key();
  const up = async (host: HostName, ifname: string, k: { priv: string }, addr: string, wgArgs: string[]) => {
    const p = lab.spawn(host, `wireguard-go-${ifname}`, ['wireguard-go', '-f', ifname]);
    const sock = join(WG_SOCKET_DIR, `${ifname}.sock`);
    await waitFor(
      `wireguard-go ${ifname} on ${host}`,
      () => {
        if (!p.running) throw new Error(`wireguard-go on ${host} exited: ${p.log.trim()}`);
        return existsSync(sock);
      },
      10_000,
      50,
    );
    const keyFile = join(lab.dir, `${ifname}.key`);
    writeFileSync(keyFile, k.priv + '\n', { mode: 0o600 });
    const x = (argv: string[]) => lab.exec(host, argv, { timeoutMs: 5000 });
    await x(['wg', 'set', ifname, 'private-key', keyFile, ...wgArgs]);
    await x(['ip', 'addr', 'add', `${addr}/32`, 'dev', ifname]);
    await x(['ip', 'link', 'set', ifname, 'mtu', String(WG_MTU), 'up']);
  };
  await up('gw', IFS.gw, kGw, WG_GW, [
    'listen-port',
    String(WG_PORT),
    'peer',
    kEn.pub,
    'allowed-ips',
    `${WG_EN}/32`,
  ]);
  await lab.exec('gw', ['ip', 'route', 'add', `${WG_EN}/32`, 'dev', IFS.gw], { timeoutMs: 5000 });
  await up('en1', IFS.en1, kEn, WG_EN, [
    'peer',
    kGw.pub,
    'endpoint',
    `${ADDR.gwWan}:${WG_PORT}`,
    'allowed-ips',
    `${target}/32,${WG_GW}/32`,
  ]);
  for (const dst of [WG_GW, target]) {
    await lab.exec('en1', ['ip', 'route', 'add', `${dst}/32`, 'dev', IFS.en1], { timeoutMs: 5000 });
  }
  const link = await lab.exec('en1', ['ip', '-o', 'link', 'show', IFS.en1], { timeoutMs: 5000 });
  const mtu = Number(/ mtu (\d+)/.exec(link.stdout)?.[1] ?? 0);
  // The handshake, through the home NAT, and the whole path to in1, before anything is measured.
  await waitTunnelUp(lab, 'WireGuard', target);
  return {
    mtu,
    counter: async () =>
      wgTransferBytes(
        (await lab.exec('en1', ['wg', 'show', IFS.en1, 'transfer'], { timeoutMs: 5000 })).stdout,
      ),
  };
}
