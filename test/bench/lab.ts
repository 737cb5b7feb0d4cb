// In-lab throughput benchmark: one TCP stream (iperf3, 5 s, each direction) from the teleworker
// PC en1, behind the home NAT, to in1 on the office LAN, all in the network-namespace lab.
//   GSRA: en1 -> intra1.corp.example through gsra-agent, the home NAT and gsra-gateway.
//   Peer, in the same run: a userspace WireGuard tunnel (wireguard-go, one per side) from en1 to
//   the gateway host, which routes to in1 — the same hosts, NAT and links.
// Figures are receiver-side bits_per_second; read the ratios, not the absolute numbers.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGsraLab, IN1 } from '../e2e/gsra-lab.ts';
import { ADDR, type HostName, type Lab } from '../lab/lab.ts';
import { run as runCmd, waitFor } from '../lab/exec.ts';
import { startIperf } from '../lab/services.ts';
import type { BenchCase, Emit } from './run.ts';

const SECONDS = 5;
const IPERF_PORT = 5201;
/**
 * Not WireGuard's usual 51820: that lies in gsra-gateway's reserved port range (40000-59999 by
 * default, the lab's), and both GSRA daemons queue that range to their engines (gatewayRules: UDP
 * to GGR with such a destination port; agentRules: UDP from GGR with such a source port), which
 * drop packets of no reservation — the handshake would never get through.
 */
const WG_PORT = 61820;
const WG_EN = '172.31.0.2';
const WG_GW = '172.31.0.1';
/** wireguard-go's control socket lives in /var/run/wireguard/<ifname>.sock, outside any netns. */
const WG_SOCKET_DIR = '/var/run/wireguard';

interface IperfResult {
  end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
  error?: string;
}

/** One iperf3 TCP run from en1 to target: the receiver's rate in Mbit/s and the bytes it got. */
async function iperf(lab: Lab, target: string, reverse: boolean): Promise<{ mbps: number; bytes: number }> {
  const argv = ['iperf3', '-c', target, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-P', '1', '-J'];
  argv.push('--connect-timeout', '5000');
  if (reverse) argv.push('-R');
  const r = await lab.exec('en1', argv, { timeoutMs: (SECONDS + 20) * 1000, allowFail: true });
  let j: IperfResult;
  try {
    j = JSON.parse(r.stdout) as IperfResult;
  } catch {
    throw new Error(
      `iperf3 to ${target} (exit ${r.code ?? r.signal}): ${(r.stderr || r.stdout).slice(0, 500)}`,
    );
  }
  const bps = j.end?.sum_received?.bits_per_second;
  if (r.code !== 0 || j.error || typeof bps !== 'number') {
    throw new Error(`iperf3 to ${target}${reverse ? ' -R' : ''} failed: ${j.error ?? `exit ${r.code}`}`);
  }
  return { mbps: bps / 1e6, bytes: j.end?.sum_received?.bytes ?? 0 };
}

/**
 * A run, checked to have taken the path it names: `counter` (bytes seen on that path so far) must
 * have grown by at least the bytes iperf3 moved. A check of the path, never of the timing.
 */
async function measure(
  lab: Lab,
  what: string,
  target: string,
  reverse: boolean,
  counter: () => Promise<number>,
): Promise<number> {
  const before = await counter();
  const r = await iperf(lab, target, reverse);
  const seen = (await counter()) - before;
  if (seen < r.bytes) {
    throw new Error(`${what}: iperf3 moved ${r.bytes} bytes but only ${seen} went through ${what}`);
  }
  return r.mbps;
}

/** Bytes that gsra-gateway's NFQUEUE rules (gatewayRules) have handed to its engine. */
async function gatewayQueuedBytes(lab: Lab): Promise<number> {
  const r = await lab.exec('gw', ['iptables', '-w', '-t', 'raw', '-L', 'PREROUTING', '-v', '-n', '-x'], {
    timeoutMs: 5000,
  });
  return r.stdout
    .split('\n')
    .filter((l) => l.includes('gsra:gateway'))
    .reduce((n, l) => n + Number(l.trim().split(/\s+/)[1] ?? 0), 0);
}

/** Bytes in and out of en1's WireGuard interface (its only peer), as wireguard-go counts them. */
async function tunnelBytes(lab: Lab, ifname: string): Promise<number> {
  const r = await lab.exec('en1', ['wg', 'show', ifname, 'transfer'], { timeoutMs: 5000 });
  const [, rx, tx] = r.stdout.trim().split('\t');
  return Number(rx ?? 0) + Number(tx ?? 0);
}

/** Interface names unique to this process: the control sockets of every namespace share one directory. */
const WG_IF = { en1: `wgb${process.pid}e`, gw: `wgb${process.pid}g` };

/** wireguard-go on en1 and on the gateway; en1 routes in1 through the tunnel. Returns the tunnel MTU. */
async function startWireguard(lab: Lab): Promise<number> {
  const ifEn = WG_IF.en1;
  const ifGw = WG_IF.gw;
  const key = async () => {
    const priv = (await runCmd(['wg', 'genkey'], { timeoutMs: 5000 })).stdout.trim();
    const pub = (await runCmd(['wg', 'pubkey'], { input: priv + '\n', timeoutMs: 5000 })).stdout.trim();
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
    await x(['ip', 'link', 'set', ifname, 'up']);
  };
  await up('gw', ifGw, kGw, WG_GW, [
    'listen-port',
    String(WG_PORT),
    'peer',
    kEn.pub,
    'allowed-ips',
    `${WG_EN}/32`,
  ]);
  await lab.exec('gw', ['ip', 'route', 'add', `${WG_EN}/32`, 'dev', ifGw], { timeoutMs: 5000 });
  await up('en1', ifEn, kEn, WG_EN, [
    'peer',
    kGw.pub,
    'endpoint',
    `${ADDR.gwWan}:${WG_PORT}`,
    'allowed-ips',
    `${ADDR.in1}/32,${WG_GW}/32`,
  ]);
  for (const dst of [WG_GW, ADDR.in1]) {
    await lab.exec('en1', ['ip', 'route', 'add', `${dst}/32`, 'dev', ifEn], { timeoutMs: 5000 });
  }
  // in1 must send its answers to the tunnel address back through the gateway.
  const back = await lab.exec('in1', ['ip', '-4', 'route', 'get', WG_EN], { timeoutMs: 5000 });
  if (!back.stdout.includes(`via ${ADDR.gwLan}`)) {
    await lab.exec('in1', ['ip', 'route', 'add', `${WG_EN}/32`, 'via', ADDR.gwLan], { timeoutMs: 5000 });
  }
  const link = await lab.exec('en1', ['ip', '-o', 'link', 'show', ifEn], { timeoutMs: 5000 });
  const mtu = Number(/ mtu (\d+)/.exec(link.stdout)?.[1] ?? 0);
  // The handshake, through the home NAT, and the whole path to in1, before anything is measured.
  await waitFor(
    'the WireGuard tunnel to carry a ping from en1 to in1',
    async () =>
      (await lab.exec('en1', ['ping', '-c1', '-W1', ADDR.in1], { allowFail: true, timeoutMs: 3000 })).code ===
      0,
    10_000,
    200,
  );
  return mtu;
}

async function run(emit: Emit): Promise<void> {
  const g = await startGsraLab();
  try {
    const lab = g.lab;
    await g.startAgent('en1', 'alice');
    await startIperf(lab, 'in1', IPERF_PORT);
    const wgMtu = await startWireguard(lab);
    const viaGsra = (reverse: boolean) =>
      measure(lab, 'gsra-gateway', IN1, reverse, () => gatewayQueuedBytes(lab));
    const viaWg = (reverse: boolean) =>
      measure(lab, 'the WireGuard tunnel', ADDR.in1, reverse, () => tunnelBytes(lab, WG_IF.en1));
    // Alternate the two paths so a slow moment of a shared machine hits both alike.
    const gsraUp = await viaGsra(false);
    const wgUp = await viaWg(false);
    const gsraDown = await viaGsra(true);
    const wgDown = await viaWg(true);
    const mbps = (v: number) => Number(v.toFixed(1));
    const ratio = (a: number, b: number) => Number((a / b).toFixed(3));
    emit({ case: 'lab', metric: 'gsra_up_mbps', value: mbps(gsraUp) });
    emit({ case: 'lab', metric: 'wireguard_go_up_mbps', value: mbps(wgUp) });
    emit({ case: 'lab', metric: 'gsra_down_mbps', value: mbps(gsraDown) });
    emit({ case: 'lab', metric: 'wireguard_go_down_mbps', value: mbps(wgDown) });
    emit({ case: 'lab', metric: 'gsra_vs_wireguard_go_up', value: ratio(gsraUp, wgUp) });
    emit({ case: 'lab', metric: 'gsra_vs_wireguard_go_down', value: ratio(gsraDown, wgDown) });
    emit({ case: 'lab', metric: 'wireguard_go_mtu', value: wgMtu });
    console.error(
      [
        `bench: lab: one TCP stream, ${SECONDS} s each, en1 (behind the home NAT) -> in1, receiver Mbit/s:`,
        `  up   (en1 -> in1): GSRA ${mbps(gsraUp)}, wireguard-go ${mbps(wgUp)}, ratio ${ratio(gsraUp, wgUp)}`,
        `  down (in1 -> en1): GSRA ${mbps(gsraDown)}, wireguard-go ${mbps(wgDown)}, ratio ${ratio(gsraDown, wgDown)}`,
        `  (wireguard-go at its default MTU ${wgMtu}; ratios are what to read, the machine is shared)`,
      ].join('\n'),
    );
  } finally {
    await g.stop();
    // wireguard-go removes its socket on SIGTERM; a SIGKILLed one leaves it behind.
    for (const i of Object.values(WG_IF)) rmSync(join(WG_SOCKET_DIR, `${i}.sock`), { force: true });
  }
}

export const labCase: BenchCase = {
  name: 'lab',
  description:
    'in the network-namespace lab, one iperf3 TCP stream for 5 s each way between en1 (behind the home NAT) and in1: through GSRA (gsra-agent + gsra-gateway) and, as the peer in the same run, through a userspace WireGuard tunnel (wireguard-go on en1 and on the gateway host, default MTU); receiver Mbit/s and GSRA/wireguard-go ratios',
  run,
};
