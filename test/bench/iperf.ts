// iperf3 runs and the figures read from its JSON (iperf3 3.12: end.sum_sent / end.sum_received).
// Receiver-side figures only: what arrived, not what was offered.
import type { Lab } from '../lab/lab.ts';
import type { Dir } from './figures.ts';

export const IPERF_PORT = 5201;

export interface TcpResult {
  gbps: number;
  /** Bytes the receiver got. */
  bytes: number;
  retransmits: number | null;
}
export interface UdpResult {
  /** Datagrams received per second. */
  pps: number;
  lossPct: number;
  bytes: number;
}

interface IperfSum {
  seconds?: number;
  bytes?: number;
  bits_per_second?: number;
  retransmits?: number;
  packets?: number;
  lost_packets?: number;
}
interface IperfJson {
  error?: string;
  end?: { sum_sent?: IperfSum; sum_received?: IperfSum };
}

function parse(text: string): IperfJson {
  try {
    return JSON.parse(text) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.slice(0, 300)}`);
  }
}

export function parseTcp(text: string): TcpResult {
  const j = parse(text);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const r = j.end?.sum_received;
  if (typeof r?.bits_per_second !== 'number' || typeof r.bytes !== 'number') {
    throw new Error('iperf3: no end.sum_received in the TCP result');
  }
  const retr = j.end?.sum_sent?.retransmits;
  return {
    gbps: r.bits_per_second / 1e9,
    bytes: r.bytes,
    retransmits: typeof retr === 'number' ? retr : null,
  };
}

export function parseUdp(text: string): UdpResult {
  const j = parse(text);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const r = j.end?.sum_received;
  const { packets, lost_packets: lost, seconds, bytes } = r ?? {};
  if (
    typeof packets !== 'number' ||
    typeof lost !== 'number' ||
    typeof seconds !== 'number' ||
    typeof bytes !== 'number' ||
    !(seconds > 0)
  ) {
    throw new Error('iperf3: no packets/lost_packets/seconds in end.sum_received of the UDP result');
  }
  const got = Math.max(0, packets - lost);
  return { pps: got / seconds, lossPct: packets ? (100 * lost) / packets : 0, bytes };
}

export function iperfArgv(
  target: string,
  o: { dir: Dir; seconds: number; streams?: number; udpSize?: number },
): string[] {
  const argv = ['iperf3', '-c', target, '-p', String(IPERF_PORT), '-t', String(o.seconds), '-J'];
  argv.push('--connect-timeout', '5000');
  if (o.udpSize) argv.push('-u', '-l', String(o.udpSize), '-b', '0');
  else argv.push('-P', String(o.streams ?? 1));
  if (o.dir === 'in-en') argv.push('-R');
  return argv;
}

/** Runs iperf3 from en1; a failed run throws with iperf3's own message. */
export async function runIperf(lab: Lab, argv: string[], seconds: number): Promise<string> {
  const r = await lab.exec('en1', argv, { timeoutMs: (seconds + 25) * 1000, allowFail: true });
  if (r.code !== 0) {
    let why = (r.stderr || r.stdout).slice(0, 400);
    try {
      why = (JSON.parse(r.stdout) as IperfJson).error ?? why;
    } catch {
      // not JSON: keep the raw text
    }
    throw new Error(`${argv.join(' ')}: exit ${r.code ?? r.signal}: ${why}`);
  }
  return r.stdout;
}
