// The attacker's lab: a whole GSRA system (test/e2e/gsra-lab.ts) with alice's agent on en1, a
// large file on intra1, captures on the internet link and on intra1, packets sent from any
// namespace through a raw socket (tools/send-raw.py), and the drop counters both daemons export.
// Each attack runs against a live download whose sha256 is checked when it ends.
import { statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDR, type HostName, type Lab } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import type { IpPacket } from '../lab/pcap.ts';
import { readPcap } from '../lab/pcap.ts';
import { makeRandomFile, sha256File, startCapture, type Capture } from '../lab/services.ts';
import { startGsraLab, IN1, type GsraLab } from '../e2e/gsra-lab.ts';

const TOOLS = join(dirname(fileURLToPath(import.meta.url)), 'tools');
export const SEND_RAW = join(TOOLS, 'send-raw.py');
export const STREAM = join(TOOLS, 'stream.py');

/** `npm run test:long` (GSRA_LONG=1): bigger transfers, floods of forged packets. */
export const LONG = process.env.GSRA_LONG === '1';

export type Drops = Record<string, number>;

/** A download in progress on en1. */
export interface Download {
  out: string;
  /** Bytes received so far. */
  received(): number;
  /** Resolves with the sha256 of what arrived once curl ends (rejects if curl fails). */
  done: Promise<string>;
}

/** The TCP flow of a transfer as the internet link shows it. */
export interface WireFlow {
  /** The gateway's port t and the home router's port m. */
  t: number;
  m: number;
  /** GGR:t -> GHR:m, and GHR:m -> GGR:t, in capture order. */
  down: IpPacket[];
  up: IpPacket[];
}

export interface AttackLab {
  g: GsraLab;
  lab: Lab;
  /** The file intra1 serves as /big.bin, and its sha256. */
  big: { size: number; sha: string };
  download(rateBytes?: number): Download;
  /** Refused packets by reason, as /metrics of gsra-gateway and of alice's gsra-agent report them. */
  gatewayDrops(): Promise<Drops>;
  agentDrops(): Promise<Drops>;
  /** Sends raw IPv4 packets from a namespace; resolves once all are sent. */
  send(host: HostName, packets: Buffer[], gapMs?: number): Promise<void>;
  /** tcpdump on the internet link (the inet switch) and on intra1, readable while running. */
  captureInternet(): Promise<LiveCapture>;
  captureIntra1(): Promise<LiveCapture>;
  /** tcpdump of TCP on a host's eth0 (e.g. alice's PC: what crossed her home router). */
  captureHost(host: HostName): Promise<LiveCapture>;
  stop(): Promise<void>;
}

export interface LiveCapture extends Capture {
  /** What the capture holds so far (tcpdump writes every packet at once). */
  peek(): IpPacket[];
}

/** The download's flow: the flow from GGR with the most payload bytes. */
export function wireFlow(packets: IpPacket[]): WireFlow {
  const tcp = packets.filter((p) => p.proto === 6 && p.raw.length >= p.length);
  const bytes = new Map<string, number>();
  for (const p of tcp)
    if (p.src === ADDR.gwWan && p.dst === ADDR.hrWan && p.sport !== 636)
      bytes.set(`${p.sport}/${p.dport}`, (bytes.get(`${p.sport}/${p.dport}`) ?? 0) + p.payload.length);
  const best = [...bytes.entries()].sort((a, b) => b[1] - a[1])[0];
  if (!best) throw new Error('no GSRA flow on the internet link yet');
  const [t, m] = best[0].split('/').map(Number) as [number, number];
  return {
    t,
    m,
    down: tcp.filter((p) => p.src === ADDR.gwWan && p.sport === t && p.dport === m),
    up: tcp.filter((p) => p.dst === ADDR.gwWan && p.dport === t && p.sport === m),
  };
}

/** Reads `<prefix>_dropped_packets_total{reason="..."} n` lines. */
export function parseDrops(metrics: string, prefix: string): Drops {
  const out: Drops = {};
  const re = new RegExp(`^${prefix}_dropped_packets_total\\{reason="([a-z-]+)"\\} (\\d+)$`, 'gm');
  for (const m of metrics.matchAll(re)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Per-reason growth between two readings. */
export function delta(before: Drops, after: Drops): Drops {
  const d: Drops = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) d[k] = v - (before[k] ?? 0);
  return d;
}

export async function startAttackLab(): Promise<AttackLab> {
  const g = await startGsraLab({ refreshSec: 30 });
  try {
    const lab = g.lab;
    const size = (LONG ? 64 : 12) << 20;
    const sha = makeRandomFile(join(g.web1.root, 'big.bin'), size);
    await g.startAgent('en1', 'alice');
    let n = 0;
    const live = async (node: HostName | 'inet', iface: string, filter: string[]): Promise<LiveCapture> => {
      const c = await startCapture(lab, node, iface, filter);
      return {
        ...c,
        peek: () => (existsSync(c.file) ? readPcap(c.file).filter((p) => p.raw.length >= p.length) : []),
      };
    };
    const metrics = async (host: HostName, port: number) =>
      (await lab.exec(host, ['curl', '-sS', '-m', '5', `http://127.0.0.1:${port}/metrics`])).stdout;
    return {
      g,
      lab,
      big: { size, sha },
      download(rateBytes = (LONG ? 8 : 3) << 20) {
        const out = join(lab.dir, `download-${++n}.bin`);
        const done = lab
          .exec(
            'en1',
            ['curl', '-sS', '-f', '-o', out, '--limit-rate', String(rateBytes), `http://${IN1}/big.bin`],
            { timeoutMs: 120_000 },
          )
          .then(() => sha256File(out));
        return { out, received: () => (existsSync(out) ? statSync(out).size : 0), done };
      },
      gatewayDrops: async () => parseDrops(await metrics('gw', 9464), 'gsra_gateway'),
      agentDrops: async () => parseDrops(await metrics('en1', 9465), 'gsra_agent'),
      async send(host, packets, gapMs = 0) {
        if (packets.length === 0) return;
        const r = await lab.exec(host, ['python3', SEND_RAW, '--gap-ms', String(gapMs)], {
          input: packets.map((p) => p.toString('hex')).join('\n') + '\n',
          timeoutMs: 60_000,
        });
        if (Number(r.stdout.trim()) !== packets.length)
          throw new Error(`sent ${r.stdout.trim()} of ${packets.length}`);
      },
      captureInternet: () => live('inet', 'br0', ['tcp', 'or', 'icmp']),
      captureIntra1: () => live('in1', 'eth0', ['tcp']),
      captureHost: (host) => live(host, 'eth0', ['tcp']),
      stop: () => g.stop(),
    };
  } catch (e) {
    await g.stop();
    throw e;
  }
}

/** Waits until a download has received `fraction` of the file. */
export async function midway(d: Download, size: number, fraction = 0.25): Promise<void> {
  await waitFor('the download to be under way', () => d.received() >= size * fraction, 30_000, 50);
}
