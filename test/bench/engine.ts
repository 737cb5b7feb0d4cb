// Engine benchmark: one TCP flow in memory, no kernel. Each packet goes through both halves of
// the data path on one core: agent 'out' (translate + AES-128-CTR + HMAC-SHA256 MAC option) and
// gateway 'in' (verify + decrypt + translate), through the N-API process() call.
// Peer in the same run: AES-128-GCM seal + open of the same payloads with node:crypto (OpenSSL).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Engine, benchLoop, directionKeys } from '../../native/index.ts';
import { tcp, SYN, PSH, ACK } from '../../native/packets.ts';
import type { Timing } from './args.ts';
import { single, type Figure } from './figures.ts';

const PEN = '192.168.1.10';
const VIN = '100.64.0.5';
const GGR = '203.0.113.1';
const PGR = '10.0.0.1';
const PIN = '10.0.0.11';
const S = 40000;
const D = 80;
const T = 20001;

const packet = (seq: number, ack: number, flags: number, payload: Buffer) =>
  tcp(PEN, S, VIN, D, seq, ack, flags, payload);

function setup() {
  const agent = new Engine({ role: 'agent', vinNet: '100.64.0.0/16' });
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  const k = {
    enToGw: { encKey: randomBytes(16), macKey: randomBytes(32), ivSalt: randomBytes(8) },
    gwToEn: { encKey: randomBytes(16), macKey: randomBytes(32), ivSalt: randomBytes(8) },
  };
  agent.addFlow({
    id: 1,
    proto: 'tcp',
    pen: PEN,
    s: S,
    vin: VIN,
    d: D,
    ggr: GGR,
    t: T,
    ...directionKeys('agent', k),
  });
  gw.addReservation({ id: 1, proto: 'tcp', t: T, pin: PIN, ...directionKeys('gateway', k) });
  // Handshake (no NAT in between: the gateway binds PEN:s as GHR:m).
  const syn = agent.process(packet(1000, 0, SYN, Buffer.alloc(0)), 'out');
  const bound = gw.process(syn.packet!, 'in');
  if (bound.verdict !== 'accept') throw new Error(`bench setup: SYN not accepted: ${JSON.stringify(bound)}`);
  return { agent, gw };
}

function timeLoop(seconds: number, body: () => void): { n: number; sec: number } {
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  let n = 0;
  let now = t0;
  while (now < end) {
    for (let i = 0; i < 256; i++) body();
    n += 256;
    now = process.hrtime.bigint();
  }
  return { n, sec: Number(now - t0) / 1e9 };
}

/** Figures of the engine in memory (case "engine", size = TCP payload bytes). */
export async function engineFigures(t: Timing, say: (s: string) => void): Promise<Figure[]> {
  const seconds = t.engineSeconds;
  const out: Figure[] = [];
  const emit = (f: { metric: string; payload: number; value: number }) =>
    out.push(single({ case: 'engine', metric: f.metric, size: f.payload }, f.value, {}, 4));
  say(`engine: agent out + gateway in per packet, in memory, ${seconds} s per figure`);
  for (const size of [64, 512, 1460]) {
    const { agent, gw } = setup();
    const ring = 1024;
    const pkts = Array.from({ length: ring }, (_, i) =>
      packet(1001 + i * size, 1, PSH | ACK, randomBytes(size)),
    );
    const ipBytes = pkts[0]!.length;
    let i = 0;
    let bad = 0;
    // Main figure: the allocation-free N-API path (processInto into preallocated buffers).
    const bufA = Buffer.alloc(65536);
    const bufB = Buffer.alloc(65536);
    const step = () => {
      const n = agent.processInto(pkts[i++ % ring]!, 'out', bufA);
      if (n <= 0 || gw.processInto(bufA.subarray(0, n), 'in', bufB) <= 0) bad++;
    };
    timeLoop(0.2, step);
    const r = timeLoop(seconds, step);
    if (bad) throw new Error(`engine bench: ${bad} packets were not accepted`);
    const pps = r.n / r.sec;
    emit({ metric: 'pps', payload: size, value: Math.round(pps) });
    emit({
      metric: 'gbps',
      payload: size,
      value: Number(((pps * ipBytes * 8) / 1e9).toFixed(3)),
    });
    emit({ metric: 'ns_per_packet', payload: size, value: Math.round(1e9 / pps) });

    // The convenience API: process() returns an object and a new Buffer per call.
    const obj = () => {
      const out = agent.process(pkts[i++ % ring]!, 'out');
      if (gw.process(out.packet!, 'in').verdict !== 'accept') bad++;
    };
    timeLoop(0.2, obj);
    const ro = timeLoop(seconds, obj);
    if (bad) throw new Error(`engine bench: ${bad} packets were not accepted`);
    emit({ metric: 'process_api_pps', payload: size, value: Math.round(ro.n / ro.sec) });

    // The engine alone: the same two halves looped inside Rust (how the NFQUEUE backend drives it).
    benchLoop(size, 0.2);
    const nl = benchLoop(size, seconds);
    const nativePps = nl.packets / nl.seconds;
    emit({ metric: 'native_pps', payload: size, value: Math.round(nativePps) });
    emit({
      metric: 'native_gbps',
      payload: size,
      value: Number(((nativePps * ipBytes * 8) / 1e9).toFixed(3)),
    });

    // Peer: AES-128-GCM seal + open of the same payload bytes (node:crypto / OpenSSL).
    const key = randomBytes(16);
    const iv = randomBytes(12);
    let j = 0;
    const peer = () => {
      const pl = pkts[j++ % ring]!.subarray(40);
      iv.writeUInt32BE(j, 8);
      const c = createCipheriv('aes-128-gcm', key, iv);
      const ct = Buffer.concat([c.update(pl), c.final()]);
      const tag = c.getAuthTag();
      const d = createDecipheriv('aes-128-gcm', key, iv);
      d.setAuthTag(tag);
      d.update(ct);
      d.final();
    };
    timeLoop(0.2, peer);
    const p = timeLoop(seconds, peer);
    const peerPps = p.n / p.sec;
    emit({ metric: 'peer_node_aes128gcm_pps', payload: size, value: Math.round(peerPps) });
    emit({
      metric: 'ratio_vs_peer',
      payload: size,
      value: Number((pps / peerPps).toFixed(3)),
    });
  }
  return out;
}
