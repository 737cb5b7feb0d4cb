// Packets as an attacker makes them: copies of captured IPv4/TCP packets with fields changed, forged
// TCP segments and ICMP errors, all with correct IP and TCP/ICMP checksums (a wrong checksum would
// be dropped before the engine and prove nothing). Pure functions on Buffers.

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

function sum(b: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const addr = (a: string) => Buffer.from(a.split('.').map(Number));
const addrAt = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/** Rewrites the IPv4 total length and header checksum and the TCP/UDP/ICMP checksum. */
export function fixChecksums(p: Buffer): Buffer {
  const ihl = (p[0]! & 15) * 4;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(~sum(p.subarray(0, ihl)) & 0xffff, 10);
  const proto = p[9]!;
  const l4 = p.subarray(ihl);
  const at = proto === 6 ? 16 : proto === 17 ? 6 : 2;
  l4.writeUInt16BE(0, at);
  const pseudo =
    proto === 1 ? 0 : sum(Buffer.concat([p.subarray(12, 20), Buffer.from([0, proto]), u16(l4.length)]));
  let c = ~sum(l4, pseudo) & 0xffff;
  if (proto === 17 && c === 0) c = 0xffff;
  l4.writeUInt16BE(c, at);
  return p;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A TCP packet's fields (a view of a captured or crafted packet). */
export interface Segment {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** The option bytes (with padding), as they are. */
  options: Buffer;
  payload: Buffer;
}

export function parseSegment(raw: Buffer): Segment {
  const ihl = (raw[0]! & 15) * 4;
  const total = raw.readUInt16BE(2);
  const t = raw.subarray(ihl, total);
  const hl = (t[12]! >> 4) * 4;
  return {
    src: addrAt(raw, 12),
    dst: addrAt(raw, 16),
    sport: t.readUInt16BE(0),
    dport: t.readUInt16BE(2),
    seq: t.readUInt32BE(4),
    ack: t.readUInt32BE(8),
    flags: t[13]!,
    window: t.readUInt16BE(14),
    options: Buffer.from(t.subarray(20, hl)),
    payload: Buffer.from(t.subarray(hl)),
  };
}

/** Builds an IPv4/TCP packet (TTL 64, DF) from its fields. */
export function buildSegment(s: Segment): Buffer {
  const opts = Buffer.concat([s.options, Buffer.alloc((4 - (s.options.length % 4)) % 4, 1)]);
  const t = Buffer.alloc(20 + opts.length);
  t.writeUInt16BE(s.sport, 0);
  t.writeUInt16BE(s.dport, 2);
  t.writeUInt32BE(s.seq >>> 0, 4);
  t.writeUInt32BE(s.ack >>> 0, 8);
  t[12] = (t.length / 4) << 4;
  t[13] = s.flags;
  t.writeUInt16BE(s.window, 14);
  opts.copy(t, 20);
  return ipv4(6, s.src, s.dst, Buffer.concat([t, s.payload]));
}

function ipv4(proto: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(0x4000, 6);
  h[8] = 64;
  h[9] = proto;
  addr(src).copy(h, 12);
  addr(dst).copy(h, 16);
  return fixChecksums(Buffer.concat([h, l4]));
}

/** The PCCOM option's offset and length inside `options` (kind 253, ExID "GS"), if any. */
export function pccomOption(options: Buffer): { at: number; len: number } | undefined {
  for (let i = 0; i < options.length;) {
    const k = options[i]!;
    if (k === 0) return undefined;
    if (k === 1) {
      i++;
      continue;
    }
    const l = options[i + 1] ?? 0;
    if (l < 2) return undefined;
    if (k === 253 && options[i + 2] === 0x47 && options[i + 3] === 0x53) return { at: i, len: l };
    i += l;
  }
  return undefined;
}

/** The options without the PCCOM option (as the internal host sent them). */
export function withoutPccom(options: Buffer): Buffer {
  const o = pccomOption(options);
  if (!o) return options;
  return Buffer.concat([options.subarray(0, o.at), options.subarray(o.at + o.len)]);
}

/** Flips one bit of a packet (offset from the start of the IP header) and repairs the checksums. */
export function flipBit(raw: Buffer, at: number, bit = 0): Buffer {
  const p = Buffer.from(raw);
  p[at]! ^= 1 << bit;
  return fixChecksums(p);
}

/** A copy of a captured packet from another source (address and port). */
export function fromSource(raw: Buffer, src: string, sport?: number): Buffer {
  const p = Buffer.from(raw);
  addr(src).copy(p, 12);
  if (sport !== undefined) p.writeUInt16BE(sport, (p[0]! & 15) * 4);
  return fixChecksums(p);
}

/**
 * An ICMP error from `src` to `dst` quoting the first 28 bytes of `quoted` (its IP header and
 * first 8 transport bytes: ports and sequence number). `rest`: the 4 bytes after the checksum
 * (for "fragmentation needed": unused(2) + next-hop MTU(2)).
 */
export function icmpError(
  src: string,
  dst: string,
  type: number,
  code: number,
  rest: number,
  quoted: Buffer,
): Buffer {
  const l4 = Buffer.alloc(8 + 28);
  l4[0] = type;
  l4[1] = code;
  l4.writeUInt32BE(rest >>> 0, 4);
  quoted.copy(l4, 8, 0, 28);
  return ipv4(1, src, dst, l4);
}
