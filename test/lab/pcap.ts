// Reads the pcap files tcpdump writes, and decodes just enough IPv4/TCP/UDP for assertions.
import { readFileSync } from 'node:fs';

export interface IpPacket {
  src: string;
  dst: string;
  proto: number;
  /** Total IPv4 length from the header. */
  length: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte, for TCP. */
  flags?: number;
  /** Transport payload (after the TCP/UDP header). */
  payload: Buffer;
  /** The whole IPv4 packet. */
  raw: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;

function ip4(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** Decode an IPv4 packet; null for anything else or anything truncated. */
export function decodeIpv4(raw: Buffer): IpPacket | null {
  if (raw.length < 20 || raw[0]! >> 4 !== 4) return null;
  const ihl = (raw[0]! & 15) * 4;
  const length = raw.readUInt16BE(2);
  if (ihl < 20 || raw.length < ihl) return null;
  const proto = raw[9]!;
  const pkt: IpPacket = {
    src: ip4(raw, 12),
    dst: ip4(raw, 16),
    proto,
    length,
    payload: Buffer.alloc(0),
    raw,
  };
  const l4 = raw.subarray(ihl, Math.min(raw.length, length));
  if (proto === 6 && l4.length >= 20) {
    const doff = (l4[12]! >> 4) * 4;
    pkt.sport = l4.readUInt16BE(0);
    pkt.dport = l4.readUInt16BE(2);
    pkt.flags = l4[13]!;
    pkt.payload = l4.subarray(Math.min(doff, l4.length));
  } else if (proto === 17 && l4.length >= 8) {
    pkt.sport = l4.readUInt16BE(0);
    pkt.dport = l4.readUInt16BE(2);
    pkt.payload = l4.subarray(8);
  }
  return pkt;
}

/** Every IPv4 packet in a pcap file (Ethernet, raw IP or Linux cooked captures). */
export function readPcap(file: string): IpPacket[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = u32(20) & 0xffff;
  const out: IpPacket[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const incl = u32(off + 8);
    const frame = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ipStart: number;
    if (linktype === LINKTYPE_ETHERNET) {
      let et = frame.length >= 14 ? frame.readUInt16BE(12) : 0;
      ipStart = 14;
      if (et === 0x8100 && frame.length >= 18) {
        et = frame.readUInt16BE(16);
        ipStart = 18;
      }
      if (et !== 0x0800) continue;
    } else if (linktype === LINKTYPE_LINUX_SLL) {
      if (frame.length < 16 || frame.readUInt16BE(14) !== 0x0800) continue;
      ipStart = 16;
    } else if (linktype === LINKTYPE_RAW) {
      ipStart = 0;
    } else {
      throw new Error(`${file}: unsupported link type ${linktype}`);
    }
    const p = decodeIpv4(frame.subarray(ipStart));
    if (p) out.push(p);
  }
  return out;
}
