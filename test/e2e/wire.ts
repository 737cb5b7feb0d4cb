// What the wire shows: helpers that read captured packets the way a security reviewer would.
import type { IpPacket } from '../lab/pcap.ts';

/** Bytes GSRA adds to every TCP segment on the internet: the MAC option (docs/pccom.md). */
export const TCP_MAC_OVERHEAD = 16;

/** How many of the needles appear in any packet's payload. */
export function countPlaintext(packets: IpPacket[], needles: Buffer[]): number {
  let hits = 0;
  for (const n of needles) if (packets.some((p) => p.payload.includes(n))) hits++;
  return hits;
}

/** The TCP packets of GSRA flows on the internet link: to or from GGR, except LDAPS (636). */
export function gsraTcpPackets(packets: IpPacket[], ggr: string): IpPacket[] {
  return packets.filter(
    (p) => p.proto === 6 && (p.src === ggr || p.dst === ggr) && p.sport !== 636 && p.dport !== 636,
  );
}

/** Does this TCP packet carry GSRA's MAC option (RFC 6994 kind 253, ExID "GS")? */
export function hasMacOption(p: IpPacket): boolean {
  const l4 = p.raw.subarray((p.raw[0]! & 15) * 4);
  const opts = l4.subarray(20, (l4[12]! >> 4) * 4);
  for (let i = 0; i < opts.length;) {
    const k = opts[i]!;
    if (k === 0) break;
    if (k === 1) {
      i++;
      continue;
    }
    if (k === 253 && opts[i + 2] === 0x47 && opts[i + 3] === 0x53) return true;
    i += Math.max(2, opts[i + 1] ?? 2);
  }
  return false;
}

/** TCP header length (with options) of a TCP packet. */
export function tcpHeaderLength(p: IpPacket): number {
  return (p.raw[(p.raw[0]! & 15) * 4 + 12]! >> 4) * 4;
}

/** The data packets (payload > 0) of the busiest flow sent by `src`. */
export function busiestFlowData(packets: IpPacket[], src: string): IpPacket[] {
  const by = new Map<number, number>();
  for (const p of packets) if (p.src === src) by.set(p.sport!, (by.get(p.sport!) ?? 0) + p.payload.length);
  const port = [...by.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  return packets.filter((p) => p.src === src && p.sport === port && p.payload.length > 0);
}

/** Random 24-byte windows of a file, to look for on the wire. */
export function needlesOf(file: Buffer, count = 64): Buffer[] {
  const step = Math.floor(file.length / count);
  return Array.from({ length: count }, (_, i) => file.subarray(i * step + 7, i * step + 31));
}
