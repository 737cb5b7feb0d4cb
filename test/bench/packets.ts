// IPv4 TCP and UDP packets with correct checksums, for the in-memory engine figures (the engine
// refuses a packet whose checksum is wrong, as the kernel path would deliver none).

function sum(b: Buffer, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += b.readUInt16BE(i);
  if ((end - start) % 2) s += b[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

function ipHeader(p: Buffer, proto: number, src: string, dst: string): void {
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = proto;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  p.writeUInt16BE(~sum(p, 0, 20) & 0xffff, 10);
}

export interface Addr {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

export function tcpPacket(a: Addr, seq: number, ack: number, flags: number, payload: Buffer): Buffer {
  const p = Buffer.alloc(40 + payload.length);
  ipHeader(p, 6, a.src, a.dst);
  p.writeUInt16BE(a.sport, 20);
  p.writeUInt16BE(a.dport, 22);
  p.writeUInt32BE(seq >>> 0, 24);
  p.writeUInt32BE(ack >>> 0, 28);
  p[32] = 5 << 4;
  p[33] = flags;
  p.writeUInt16BE(64240, 34);
  payload.copy(p, 40);
  const pseudo = sum(p, 12, 20) + 6 + (p.length - 20);
  p.writeUInt16BE(~sum(p, 20, p.length, pseudo) & 0xffff, 36);
  return p;
}

export function udpPacket(a: Addr, payload: Buffer): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  ipHeader(p, 17, a.src, a.dst);
  p.writeUInt16BE(a.sport, 20);
  p.writeUInt16BE(a.dport, 22);
  p.writeUInt16BE(8 + payload.length, 24);
  payload.copy(p, 28);
  const pseudo = sum(p, 12, 20) + 17 + (p.length - 20);
  p.writeUInt16BE(~sum(p, 20, p.length, pseudo) & 0xffff || 0xffff, 26);
  return p;
}

export const SYN = 0x02;
export const PSH_ACK = 0x18;
