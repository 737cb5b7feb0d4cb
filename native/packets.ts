// IPv4/TCP/UDP packet builders, checksums and a simulated home NAT: for the engine's tests and
// for the agent's `selftest` command (client-win/src/selftest.ts), which runs them on Windows too.
import type { DirectionKeys } from './index.ts';

export function ip2n(a: string): number {
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
export function n2ip(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function sum(b: Buffer, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += b.readUInt16BE(i);
  if ((end - start) % 2) s += b[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

/** Rewrites the IPv4 header checksum and the TCP/UDP/ICMP checksum in full. */
export function fixChecksums(p: Buffer): Buffer {
  const ihl = (p[0]! & 15) * 4;
  const total = p.readUInt16BE(2);
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(~sum(p, 0, ihl) & 0xffff, 10);
  const proto = p[9]!;
  const off = proto === 6 ? 16 : proto === 17 ? 6 : 2;
  p.writeUInt16BE(0, ihl + off);
  const pseudo = proto === 1 ? 0 : sum(p, 12, 20) + proto + (total - ihl);
  let c = ~sum(p, ihl, total, pseudo) & 0xffff;
  if (proto === 17 && c === 0) c = 0xffff;
  p.writeUInt16BE(c, ihl + off);
  return p;
}

export function checksumsOk(p: Buffer): boolean {
  const ihl = (p[0]! & 15) * 4;
  const total = p.readUInt16BE(2);
  const proto = p[9]!;
  const pseudo = proto === 1 ? 0 : sum(p, 12, 20) + proto + (total - ihl);
  return sum(p, 0, ihl) === 0xffff && sum(p, ihl, total, pseudo) === 0xffff;
}

function ipv4(proto: number, src: string, dst: string, l4: Buffer): Buffer {
  const p = Buffer.alloc(20 + l4.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = proto;
  p.writeUInt32BE(ip2n(src), 12);
  p.writeUInt32BE(ip2n(dst), 16);
  l4.copy(p, 20);
  return fixChecksums(p);
}

export const SYN = 0x02;
export const ACK = 0x10;
export const PSH = 0x08;
export const RST = 0x04;
export const FIN = 0x01;

export function tcp(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer = Buffer.alloc(0),
  opts: Buffer = Buffer.alloc(0),
): Buffer {
  const l4 = Buffer.alloc(20 + opts.length + payload.length);
  l4.writeUInt16BE(sport, 0);
  l4.writeUInt16BE(dport, 2);
  l4.writeUInt32BE(seq >>> 0, 4);
  l4.writeUInt32BE(ack >>> 0, 8);
  l4[12] = ((20 + opts.length) / 4) << 4;
  l4[13] = flags;
  l4.writeUInt16BE(64240, 14);
  opts.copy(l4, 20);
  payload.copy(l4, 20 + opts.length);
  return ipv4(6, src, dst, l4);
}

export function udp(src: string, sport: number, dst: string, dport: number, payload: Buffer): Buffer {
  const l4 = Buffer.alloc(8 + payload.length);
  l4.writeUInt16BE(sport, 0);
  l4.writeUInt16BE(dport, 2);
  l4.writeUInt16BE(8 + payload.length, 4);
  payload.copy(l4, 8);
  return ipv4(17, src, dst, l4);
}

export function addrs(p: Buffer): { src: string; sport: number; dst: string; dport: number } {
  const ihl = (p[0]! & 15) * 4;
  return {
    src: n2ip(p.readUInt32BE(12)),
    sport: p.readUInt16BE(ihl),
    dst: n2ip(p.readUInt32BE(16)),
    dport: p.readUInt16BE(ihl + 2),
  };
}

export function payload(p: Buffer): Buffer {
  const ihl = (p[0]! & 15) * 4;
  const total = p.readUInt16BE(2);
  if (p[9] === 6) return p.subarray(ihl + (p[ihl + 12]! >> 4) * 4, total);
  return p.subarray(ihl + 8, total);
}

/** The home router: rewrites the source (outbound) or destination (inbound) address and port. */
export function nat(
  p: Buffer,
  outbound: boolean,
  inside: [string, number],
  outside: [string, number],
): Buffer {
  const q = Buffer.from(p);
  const ihl = (q[0]! & 15) * 4;
  const [a, port] = outbound ? outside : inside;
  q.writeUInt32BE(ip2n(a), outbound ? 12 : 16);
  q.writeUInt16BE(port, ihl + (outbound ? 0 : 2));
  return fixChecksums(q);
}

export function keys(seed: number): DirectionKeys {
  const f = (n: number, k: number) => Buffer.from(Array.from({ length: n }, (_, i) => (seed * k + i) & 255));
  return { encKey: f(16, 31), macKey: f(32, 17), ivSalt: f(8, 7) };
}
