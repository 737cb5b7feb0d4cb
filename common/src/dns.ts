// The DNS wire format, as much as GSRA needs: the gateway answers A queries for the internal
// zone's public view, and the agent rewrites A answers in place (GGR -> VIN, same length).
// Parsing is strictly bounds-checked; compression pointers may only point backwards, so a
// hostile packet cannot loop. Every failure is a DnsError, never a crash or an out-of-range read.

export class DnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsError';
  }
}

export const DNS_TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, AAAA: 28, ANY: 255 } as const;
export const DNS_CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
  /** Offset of rdata in the message (for in-place rewrites). */
  rdataOffset: number;
  /** Offset of the TTL field in the message. */
  ttlOffset: number;
}

export interface DnsMessage {
  id: number;
  /** QR bit: a response. */
  response: boolean;
  opcode: number;
  rcode: number;
  flags: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authority: DnsRecord[];
  additional: DnsRecord[];
}

const MAX_NAME = 255;

/** Read a (possibly compressed) name at off; returns the name and the offset just past it. */
function readName(b: Buffer, off: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = off;
  let next = -1;
  let length = 0;
  let lowestSeen = off;
  for (;;) {
    if (pos >= b.length) throw new DnsError('name runs past the end of the message');
    const len = b[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= b.length) throw new DnsError('truncated compression pointer');
      const target = ((len & 0x3f) << 8) | b[pos + 1]!;
      // Pointers must go strictly backwards, so every name is read in finitely many steps.
      if (target >= lowestSeen) throw new DnsError('compression pointer does not point backwards');
      if (next < 0) next = pos + 2;
      lowestSeen = target;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsError(`unsupported label type 0x${len.toString(16)}`);
    if (pos + 1 + len > b.length) throw new DnsError('label runs past the end of the message');
    length += len + 1;
    if (length > MAX_NAME) throw new DnsError('name longer than 255 bytes');
    labels.push(b.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), next };
}

function readRecords(b: Buffer, off: number, count: number): { records: DnsRecord[]; next: number } {
  const records: DnsRecord[] = [];
  let pos = off;
  for (let i = 0; i < count; i++) {
    const { name, next } = readName(b, pos);
    if (next + 10 > b.length) throw new DnsError('record header runs past the end of the message');
    const type = b.readUInt16BE(next);
    const klass = b.readUInt16BE(next + 2);
    const ttl = b.readUInt32BE(next + 4);
    const rdlen = b.readUInt16BE(next + 8);
    const rdataOffset = next + 10;
    if (rdataOffset + rdlen > b.length) throw new DnsError('record data runs past the end of the message');
    if (type === DNS_TYPE.A && klass === DNS_CLASS_IN && rdlen !== 4)
      throw new DnsError('A record is not 4 bytes');
    records.push({
      name,
      type,
      class: klass,
      ttl,
      rdata: b.subarray(rdataOffset, rdataOffset + rdlen),
      rdataOffset,
      ttlOffset: next + 4,
    });
    pos = rdataOffset + rdlen;
  }
  return { records, next: pos };
}

/** Parse a whole DNS message (UDP payload). */
export function parseDns(b: Buffer): DnsMessage {
  if (b.length < 12) throw new DnsError('shorter than a DNS header');
  const flags = b.readUInt16BE(2);
  const qd = b.readUInt16BE(4);
  const an = b.readUInt16BE(6);
  const ns = b.readUInt16BE(8);
  const ar = b.readUInt16BE(10);
  let pos = 12;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qd; i++) {
    const { name, next } = readName(b, pos);
    if (next + 4 > b.length) throw new DnsError('question runs past the end of the message');
    questions.push({ name, type: b.readUInt16BE(next), class: b.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  const answers = readRecords(b, pos, an);
  const authority = readRecords(b, answers.next, ns);
  const additional = readRecords(b, authority.next, ar);
  return {
    id: b.readUInt16BE(0),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    flags,
    questions,
    answers: answers.records,
    authority: authority.records,
    additional: additional.records,
  };
}

function writeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter(Boolean);
  const out: Buffer[] = [];
  for (const p of parts) {
    const l = Buffer.from(p, 'latin1');
    if (l.length > 63) throw new DnsError(`label longer than 63 bytes in ${name}`);
    out.push(Buffer.from([l.length]), l);
  }
  out.push(Buffer.from([0]));
  const b = Buffer.concat(out);
  if (b.length > MAX_NAME) throw new DnsError('name longer than 255 bytes');
  return b;
}

export interface AnswerSpec {
  /** IPv4 addresses for an A answer (empty: NOERROR with no data). */
  a?: string[];
  rcode?: number;
  ttl?: number;
  /** Authoritative answer bit. */
  aa?: boolean;
}

function ipv4Bytes(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new DnsError(`not an IPv4 address: ${addr}`);
  }
  return Buffer.from(parts);
}

/** Build a response to `query`: the first question echoed, and A records when given. */
export function buildResponse(query: DnsMessage, spec: AnswerSpec): Buffer {
  const q = query.questions[0];
  const a = spec.a ?? [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  const rd = query.flags & 0x0100;
  header.writeUInt16BE(
    0x8000 | (query.opcode << 11) | (spec.aa ? 0x0400 : 0) | rd | ((spec.rcode ?? 0) & 0xf),
    2,
  );
  header.writeUInt16BE(q ? 1 : 0, 4);
  header.writeUInt16BE(q ? a.length : 0, 6);
  const parts: Buffer[] = [header];
  if (q) {
    const qt = Buffer.alloc(4);
    qt.writeUInt16BE(q.type, 0);
    qt.writeUInt16BE(q.class, 2);
    parts.push(writeName(q.name), qt);
    for (const addr of a) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(DNS_TYPE.A, 2);
      rr.writeUInt16BE(DNS_CLASS_IN, 4);
      rr.writeUInt32BE(spec.ttl ?? 30, 6);
      rr.writeUInt16BE(4, 10);
      ipv4Bytes(addr).copy(rr, 12);
      parts.push(rr);
    }
  }
  return Buffer.concat(parts);
}

/** Build a query (for clients and tests). */
export function buildQuery(id: number, name: string, type: number = DNS_TYPE.A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const qt = Buffer.alloc(4);
  qt.writeUInt16BE(type, 0);
  qt.writeUInt16BE(DNS_CLASS_IN, 2);
  return Buffer.concat([header, writeName(name), qt]);
}

/**
 * Rewrite A answers in place. `map(name, address)` returns the replacement address, or undefined
 * to leave the record alone; `ttl`, if given, caps the TTL of rewritten records. The length of the
 * message never changes. Returns the number of records rewritten.
 */
export function rewriteARecords(
  b: Buffer,
  map: (name: string, address: string) => string | undefined,
  ttlCap?: number,
): number {
  const msg = parseDns(b);
  let n = 0;
  for (const rr of msg.answers) {
    if (rr.type !== DNS_TYPE.A || rr.class !== DNS_CLASS_IN) continue;
    const addr = `${rr.rdata[0]}.${rr.rdata[1]}.${rr.rdata[2]}.${rr.rdata[3]}`;
    const repl = map(rr.name, addr);
    if (repl === undefined) continue;
    ipv4Bytes(repl).copy(b, rr.rdataOffset);
    if (ttlCap !== undefined && rr.ttl > ttlCap) b.writeUInt32BE(ttlCap, rr.ttlOffset);
    n++;
  }
  return n;
}
