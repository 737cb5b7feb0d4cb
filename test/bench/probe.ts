// Runs tools/probe.mjs (the benchmark's TCP/DNS client) in a lab host and parses what it prints,
// and parses ping's per-reply times. The parsers are pure (test/bench/probe.test.ts).
import { join } from 'node:path';
import type { HostName, Lab } from '../lab/lab.ts';
import { TOOLS } from './paths.ts';

export async function probe<T>(
  lab: Lab,
  host: HostName,
  args: (string | number)[],
  timeoutMs: number,
): Promise<T> {
  const argv = ['node', join(TOOLS, 'probe.mjs'), ...args.map(String)];
  const r = await lab.exec(host, argv, { timeoutMs, allowFail: true });
  if (r.code !== 0) {
    throw new Error(
      `probe ${args.join(' ')} on ${host}: ${(r.stderr || r.stdout).trim().slice(0, 400) || `exit ${r.code ?? r.signal}`}`,
    );
  }
  return JSON.parse(r.stdout) as T;
}

export interface RrResult {
  samples_ms: number[];
  bytes: number;
}
export interface DnsResult {
  samples_ms: number[];
  answers: Record<string, string>;
}
export interface ConnectResult {
  conns: {
    target: string;
    addr: string;
    lookup_ms: number | null;
    connect_ms: number;
    first_byte_ms: number;
  }[];
  bytes: number;
}
export interface ConcurrentResult {
  total_ms: number;
  samples_ms: number[];
  ok: number;
  error_count: number;
  errors: string[];
  bytes: number;
}

export interface PingResult {
  samples_ms: number[];
  sent: number;
  received: number;
  /** ICMP payload bytes both ways (what the path must have carried at least). */
  bytes: number;
}

/** Parses ping's output (without -q): one "time=X ms" per reply and the summary line. */
export function parsePing(text: string, payload = 56): PingResult {
  const samples = [...text.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const sum = /(\d+) packets transmitted, (\d+) received/.exec(text);
  if (!sum) throw new Error(`ping: no summary line in ${JSON.stringify(text.slice(-300))}`);
  const sent = Number(sum[1]);
  const received = Number(sum[2]);
  if (received !== samples.length) {
    throw new Error(`ping: ${received} replies in the summary but ${samples.length} reply lines`);
  }
  return { samples_ms: samples, sent, received, bytes: 2 * payload * received };
}
