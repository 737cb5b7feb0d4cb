// The benchmark's lab: the whole GSRA system (startGsraLab, two teleworker PCs, alice logged in
// on en1) plus every other path a user could take from en1 to in1, all up at once on the same
// hosts, home NAT and links, so one run measures them alternately:
//   plain            en1 -> GGR (port-forwards on the gateway host) -> in1
//   plain-nooffload  the same with TSO/GSO/GRO off on every veth (the per-segment ceiling)
//   wireguard-go     en1 -> wireguard-go tunnel -> gateway host -> in1 (10.0.0.21, an address of in1)
//   openvpn          en1 -> OpenVPN tunnel -> gateway host -> in1 (10.0.0.31, an address of in1)
//   gsra             en1 -> intra1.corp.example through gsra-agent, the home NAT and gsra-gateway
//   gsra-compat      not offered end to end (see COMPAT_SKIP)
// in1 runs an iperf3 server on each of its addresses and the bench servers (echo, banner) on all.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGsraLab, IN1, type GsraLab } from '../e2e/gsra-lab.ts';
import { ADDR, type Lab } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { addPortForwards } from '../lab/port-forward.ts';
import { readOffloads, setOffloads, type Offloads } from '../lab/offloads.ts';
import type { CaseName } from './figures.ts';
import type { Measurement } from './plan.ts';
import { iptablesTaggedBytes } from './path-check.ts';
import { IPERF_PORT } from './iperf.ts';
import { startWireguard } from './wireguard.ts';
import { startOpenVpn } from './openvpn.ts';

export const TOOLS = join(dirname(fileURLToPath(import.meta.url)), 'tools');
export const ECHO_PORT = 7001;
export const BANNER_PORT = 7002;
const IN1_WG = '10.0.0.21';
const IN1_OVPN = '10.0.0.31';
const PLAIN_TAG = 'bench:plain';

export const COMPAT_SKIP =
  "compat mode (the paper's 16-bit keyed checksum) is not offered end to end: the engine's addFlow/addReservation take compat:true, but neither gsra-gateway's nor gsra-agent's config nor the control protocol can switch it on for a flow";
export const GSRA_PING_SKIP =
  'GSRA translates TCP and UDP flows only: an ICMP echo to a VIN is not carried (the request/response loop measures its latency)';

export interface PathCase {
  name: CaseName;
  /** What iperf3 and the probes connect to from en1. */
  target: string;
  /** DNS server the probe asks when target is a name ('-': target is an address). */
  dns: string;
  /** Bytes seen by a counter only this path increments. */
  counter(): Promise<number>;
  /** What the counter is, for error messages. */
  via: string;
  /** null when the case carries the measurement, else why not. */
  carries(m: Measurement): string | null;
}

export interface BenchLab {
  g: GsraLab;
  lab: Lab;
  cases: Map<CaseName, PathCase>;
  /** Puts the links in the state a case needs (offloads off for plain-nooffload, as built otherwise). */
  prepare(c: CaseName): Promise<void>;
  /**
   * Stops gsra-agent on en1 and starts it again: a fresh session, so the gateway holds no
   * reservation of this user. A closed TCP flow keeps its reserved port for the engine's
   * tcp_closing (120 s) and a session may hold 256 (GatewayControl's maxReservationsPerSession),
   * so the connection-heavy figures (100 fresh names with 4 pooled ports each, 200 concurrent
   * connections) each start on a fresh session; see docs/performance.md.
   */
  restartAgent(): Promise<void>;
  /** Notes for the run's metadata (MTUs, cipher, offload defaults). */
  notes: Record<string, string | number>;
  stop(): Promise<void>;
}

export async function iptablesCounter(lab: Lab, table: string, chain: string, tag: string): Promise<number> {
  const r = await lab.exec('gw', ['iptables', '-w', '-t', table, '-L', chain, '-v', '-n', '-x'], {
    timeoutMs: 10_000,
  });
  return iptablesTaggedBytes(r.stdout, tag);
}

export async function startBenchLab(
  wanted: readonly CaseName[],
  say: (s: string) => void,
): Promise<BenchLab> {
  say('starting the lab: directory, gsra-gateway, servers');
  // GSRA_BENCH_ENGINE='{"queuesPerSide":1}': engine options for both daemons, to compare settings
  // in back-to-back runs (recorded in the meta file's notes).
  const engine = process.env.GSRA_BENCH_ENGINE
    ? (JSON.parse(process.env.GSRA_BENCH_ENGINE) as Record<string, unknown>)
    : undefined;
  const g = await startGsraLab({ ens: 2, ...(engine ? { gatewayConfig: { engine } } : {}) });
  const lab = g.lab;
  try {
    const notes: Record<string, string | number> = {};
    if (engine) notes.engine = JSON.stringify(engine);
    for (const a of [IN1_WG, IN1_OVPN]) {
      await lab.exec('in1', ['ip', 'addr', 'add', `${a}/32`, 'dev', 'eth0']);
    }
    // One iperf3 server per address of in1, bound to it: a UDP server bound to 0.0.0.0 would
    // answer from in1's primary address, which the client (connected to the other) ignores.
    const iperfs = [ADDR.in1, IN1_WG, IN1_OVPN].map((a) =>
      lab.spawn('in1', `iperf3-${a}`, ['iperf3', '-s', '-B', a, '-p', String(IPERF_PORT)]),
    );
    const srv = lab.spawn('in1', 'bench-server', [
      'node',
      join(TOOLS, 'bench-server.mjs'),
      String(ECHO_PORT),
      String(BANNER_PORT),
    ]);
    await waitFor('the bench servers on in1', () => {
      const dead = [srv, ...iperfs].find((p) => !p.running);
      if (dead) throw new Error(`${dead.name} died: ${dead.log}`);
      return srv.log.includes('listening');
    });
    for (const a of [ADDR.in1, IN1_WG, IN1_OVPN]) await lab.waitTcp('in1', a, IPERF_PORT);

    const cases = new Map<CaseName, PathCase>();
    const all = (): null => null;
    if (wanted.includes('plain') || wanted.includes('plain-nooffload')) {
      await addPortForwards(
        lab,
        [
          { proto: 'tcp', port: IPERF_PORT, to: ADDR.in1 },
          { proto: 'udp', port: IPERF_PORT, to: ADDR.in1 },
          { proto: 'tcp', port: ECHO_PORT, to: ADDR.in1 },
          { proto: 'tcp', port: BANNER_PORT, to: ADDR.in1 },
          { proto: 'icmp', to: ADDR.in1 },
        ],
        PLAIN_TAG,
      );
      for (const name of ['plain', 'plain-nooffload'] as const) {
        cases.set(name, {
          name,
          target: ADDR.gwWan,
          dns: '-',
          counter: () => iptablesCounter(lab, 'filter', 'FORWARD', PLAIN_TAG),
          via: `the gateway's port-forwards (FORWARD rule ${PLAIN_TAG})`,
          carries: all,
        });
      }
    }
    if (wanted.includes('wireguard-go')) {
      say('starting wireguard-go on en1 and the gateway');
      const wg = await startWireguard(lab, IN1_WG);
      notes.wireguard_go_mtu = wg.mtu;
      cases.set('wireguard-go', {
        name: 'wireguard-go',
        target: IN1_WG,
        dns: '-',
        counter: wg.counter,
        via: 'the WireGuard tunnel (wg show transfer)',
        carries: all,
      });
    }
    if (wanted.includes('openvpn')) {
      say('starting OpenVPN on en1 and the gateway');
      const ov = await startOpenVpn(lab, IN1_OVPN);
      notes.openvpn_cipher = ov.cipher;
      cases.set('openvpn', {
        name: 'openvpn',
        target: IN1_OVPN,
        dns: '-',
        counter: ov.counter,
        via: "the OpenVPN tunnel (en1's tun counters)",
        carries: all,
      });
    }
    if (wanted.includes('gsra')) {
      say('logging alice in on en1 (gsra-agent)');
      await g.startAgent('en1', 'alice', engine ? { config: { engine } } : {});
      cases.set('gsra', {
        name: 'gsra',
        target: IN1,
        dns: ADDR.gwWan,
        counter: () => iptablesCounter(lab, 'raw', 'PREROUTING', 'gsra:gateway'),
        via: "gsra-gateway's NFQUEUE rules (raw PREROUTING gsra:gateway)",
        carries: (m) => (m.kind === 'ping' ? GSRA_PING_SKIP : null),
      });
    }

    const initial = await readOffloads(lab);
    const on: Offloads = { tso: initial[0]!.tso, gso: initial[0]!.gso, gro: initial[0]!.gro };
    if (initial.some((s) => s.tso !== on.tso || s.gso !== on.gso || s.gro !== on.gro)) {
      throw new Error('the veths of the lab do not all have the same offloads to begin with');
    }
    notes.offloads = `tso ${on.tso ? 'on' : 'off'}, gso ${on.gso ? 'on' : 'off'}, gro ${on.gro ? 'on' : 'off'}`;
    let off = false;
    return {
      g,
      lab,
      cases,
      notes,
      async prepare(c) {
        const wantOff = c === 'plain-nooffload';
        if (wantOff === off) return;
        await setOffloads(lab, wantOff ? { tso: false, gso: false, gro: false } : on);
        off = wantOff;
      },
      async restartAgent() {
        const a = g.agents.en1;
        if (!a) throw new Error('gsra-agent is not running on en1');
        await lab.stop(a.proc);
        await g.startAgent('en1', 'alice', engine ? { config: { engine } } : {});
      },
      stop: () => g.stop(),
    };
  } catch (e) {
    await g.stop();
    throw e;
  }
}
