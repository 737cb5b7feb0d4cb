// The kinds of field a control message is made of (docs/protocol.md §4): how each is written,
// read and checked. messages.ts lists every message as a sequence of these; codec.ts runs them.
//
// A kind's check() runs on encode and after a whole datagram was read. A kind whose value the
// decoder cannot read past without judging it (a proto, a reason code, an address family, a user
// name) also checks while reading, so a datagram fails at the first field that is wrong.

import { isIPv4, isIPv6 } from 'node:net';
import {
  MAX_IN_NAME_LEN,
  MAX_NAME_LEN,
  MAX_PORTS_PER_RESERVE,
  MAX_TEXT_LEN,
  Proto,
  Reason,
  reasonName,
  type ProtoNumber,
  type ReasonName,
} from './constants.ts';
import { ProtocolError } from './errors.ts';

export const bad = (msg: string): never => {
  throw new ProtocolError('bad-value', msg);
};
const badStr = (msg: string): never => {
  throw new ProtocolError('bad-string', msg);
};

// ---------------------------------------------------------------------------------------------
// IP addresses (family byte 4/6 + 4/16 bytes on the wire)

export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map((x) => Number(x)));
  if (!isIPv6(ip) || ip.includes('%')) return bad(`${ip} is not an IP address`);
  let s = ip;
  const v4 = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const b = v4.slice(2).map(Number) as [number, number, number, number];
    s = `${v4[1]}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const parse = (p: string) => (p === '' ? [] : p.split(':').map((x) => parseInt(x, 16)));
  const halves = s.split('::');
  let words: number[];
  if (halves.length === 2) {
    const h = parse(halves[0] ?? '');
    const r = parse(halves[1] ?? '');
    words = [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  } else words = parse(s);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`; // (Array.from(b).join: 8 % of a RESERVE)
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  // compress the longest run of zero words (RFC 5952)
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

// ---------------------------------------------------------------------------------------------
// Checks shared with the state machines (names the agent is configured with, VINs)

const utf8 = new TextDecoder('utf-8', { fatal: true });
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** A user id or group name: 1..64 bytes of UTF-8 without control characters. */
export function checkName(field: string, s: string): void {
  if (typeof s !== 'string') return badStr(`${field}: not a string`);
  const n = Buffer.byteLength(s, 'utf8');
  if (n < 1 || n > MAX_NAME_LEN) badStr(`${field}: length ${n} not in 1..${MAX_NAME_LEN}`);
  if (CONTROL.test(s)) badStr(`${field}: control character`);
}
/** An IN name: a canonical (lower-case, no trailing dot) LDH DNS name, 1..253 bytes. */
export function checkInName(s: string): void {
  if (typeof s !== 'string' || s.length < 1 || s.length > MAX_IN_NAME_LEN || !DNS_NAME.test(s))
    badStr(`inName: not a canonical DNS name`);
}
/** A bare IPv4 address (4 bytes on the wire, no family byte), e.g. RESERVE's vin. */
export function checkIPv4(field: string, ip: string): void {
  if (typeof ip !== 'string' || ipToBytes(ip).length !== 4)
    bad(`${field}: ${String(ip)} is not an IPv4 address`);
}
function checkText(s: string): void {
  if (typeof s !== 'string') return badStr('text: not a string');
  if (Buffer.byteLength(s, 'utf8') > MAX_TEXT_LEN) badStr(`text longer than ${MAX_TEXT_LEN} bytes`);
  if (CONTROL.test(s)) badStr('text: control character');
}
const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

// ---------------------------------------------------------------------------------------------
// Writer / Reader

export class Writer {
  private buf = Buffer.allocUnsafe(256);
  private off = 0;
  private room(n: number): number {
    if (this.off + n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
      this.buf.copy(bigger, 0, 0, this.off);
      this.buf = bigger;
    }
    const at = this.off;
    this.off += n;
    return at;
  }
  u8(v: number) {
    this.buf.writeUInt8(v, this.room(1));
  }
  u16(v: number) {
    this.buf.writeUInt16BE(v, this.room(2));
  }
  u32(v: number) {
    this.buf.writeUInt32BE(v, this.room(4));
  }
  u64(v: bigint) {
    this.buf.writeBigUInt64BE(v, this.room(8));
  }
  bytes(b: Buffer) {
    b.copy(this.buf, this.room(b.length));
  }
  zeros(n: number) {
    this.buf.fill(0, this.room(n), this.off);
  }
  get length(): number {
    return this.off;
  }
  /** The bytes written, in a buffer of their own. */
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.off));
  }
}

export class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number, what: string) {
    if (this.off + n > this.buf.length) throw new ProtocolError('too-short', `datagram ends inside ${what}`);
  }
  private take<T>(n: number, what: string, f: (at: number) => T): T {
    this.need(n, what);
    const v = f(this.off);
    this.off += n;
    return v;
  }
  u8(what: string): number {
    return this.take(1, what, (at) => this.buf.readUInt8(at));
  }
  u16(what: string): number {
    return this.take(2, what, (at) => this.buf.readUInt16BE(at));
  }
  u32(what: string): number {
    return this.take(4, what, (at) => this.buf.readUInt32BE(at));
  }
  u64(what: string): bigint {
    return this.take(8, what, (at) => this.buf.readBigUInt64BE(at));
  }
  bytes(n: number, what: string): Buffer {
    return this.take(n, what, (at) => Buffer.from(this.buf.subarray(at, at + n)));
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
  end() {
    if (this.off !== this.buf.length)
      throw new ProtocolError('trailing-bytes', `${this.buf.length - this.off} bytes after the last field`);
  }
}

// ---------------------------------------------------------------------------------------------
// Field kinds

export interface FieldKind<T> {
  write(w: Writer, v: T): void;
  read(r: Reader, name: string): T;
  /** Throws ProtocolError unless v is a valid value of this kind. */
  check(name: string, v: unknown): void;
}
/** The value type a field kind carries. */
export type ValueOf<K> = K extends FieldKind<infer T> ? T : never;

/** A kind that is judged while reading (see the header of this file). */
function strict<T>(k: Omit<FieldKind<T>, 'read'> & { raw(r: Reader, name: string): T }): FieldKind<T> {
  return {
    write: k.write,
    check: k.check,
    read: (r, name) => {
      const v = k.raw(r, name);
      k.check(name, v);
      return v;
    },
  };
}

const uint = (bits: 8 | 16 | 32, min = 0): FieldKind<number> => {
  const max = 2 ** bits - 1;
  return {
    write: (w, v) => (bits === 8 ? w.u8(v) : bits === 16 ? w.u16(v) : w.u32(v)),
    read: (r, name) => (bits === 8 ? r.u8(name) : bits === 16 ? r.u16(name) : r.u32(name)),
    check: (name, v) => {
      if (!isInt(v, min, max)) bad(`${name} ${String(v)} not in ${min}..${max}`);
    },
  };
};
export const u16 = uint(16);
export const u32 = uint(32);
/** A port: 1..65535. */
export const port = uint(16, 1);
/** A port where 0 means "not known" (BOUND's d) or "none" (RELEASE of a session). */
export const portOrZero = uint(16);
/** RESERVE's count: 1..16 ports. */
export const count: FieldKind<number> = {
  ...uint(8),
  check: (name, v) => {
    if (!isInt(v, 1, MAX_PORTS_PER_RESERVE)) bad(`${name} ${String(v)} not in 1..${MAX_PORTS_PER_RESERVE}`);
  },
};

/** An unsigned 64-bit integer as a bigint; `nonZero` for sequence numbers. */
export const u64 = (nonZero = false): FieldKind<bigint> => ({
  write: (w, v) => w.u64(v),
  read: (r, name) => r.u64(name),
  check: (name, v) => {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) bad(`${name} is not a u64`);
    if (nonZero && v === 0n) bad(`${name} 0 is not allowed`);
  },
});

/** Milliseconds since the Unix epoch: a u64 on the wire, at most 2^53 - 1. */
export const timestamp: FieldKind<number> = strict({
  write: (w, v) => w.u64(BigInt(v)),
  raw: (r, name) => {
    const v = r.u64(name);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
  },
  check: (name, v) => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) bad(`${name} ${String(v)} out of range`);
  },
});

/** Exactly n bytes. */
export const bytes = (n: number): FieldKind<Buffer> => ({
  write: (w, v) => w.bytes(v),
  read: (r, name) => r.bytes(n, name),
  check: (name, v) => {
    if (!Buffer.isBuffer(v) || v.length !== n) bad(`${name} must be ${n} bytes`);
  },
});

/** One byte out of a fixed set of values (judged while reading). */
export const oneOf = <T extends number>(values: readonly T[]): FieldKind<T> =>
  strict({
    write: (w, v) => w.u8(v),
    raw: (r, name) => r.u8(name) as T,
    check: (name, v) => {
      if (!values.includes(v as T)) bad(`${name} ${String(v)} is not one of ${values.join(', ')}`);
    },
  });
/** A flow's transport: 6 (TCP) or 17 (UDP). */
export const proto: FieldKind<ProtoNumber> = strict({
  write: (w, v) => w.u8(v),
  raw: (r, name) => r.u8(name) as ProtoNumber,
  check: (name, v) => {
    if (v !== Proto.TCP && v !== Proto.UDP) bad(`${name} ${String(v)} is neither 6 (TCP) nor 17 (UDP)`);
  },
});

/** A reason (§13): its name in memory, its u16 code on the wire (judged while reading). */
export const reason: FieldKind<ReasonName> = {
  write: (w, v) => w.u16(Reason[v]),
  read: (r, name) => {
    const code = r.u16(name);
    return reasonName(code) ?? bad(`unknown reason code ${code}`);
  },
  check: (name, v) => {
    if (typeof v !== 'string' || !(v in Reason)) bad(`unknown ${name} ${String(v)}`);
  },
};

/** A u8 byte length and that many bytes of UTF-8. */
const str = (check: (name: string, v: unknown) => void, atRead: boolean): FieldKind<string> => {
  const kind = {
    write: (w: Writer, v: string) => {
      const b = Buffer.from(v, 'utf8');
      w.u8(b.length);
      w.bytes(b);
    },
    raw: (r: Reader, name: string) => {
      const b = r.bytes(r.u8(`${name} length`), name);
      try {
        return utf8.decode(b);
      } catch {
        return badStr(`${name}: invalid UTF-8`);
      }
    },
    check,
  };
  return atRead ? strict(kind) : { ...kind, read: kind.raw };
};
/** A user id or group name (judged while reading: the fields after it depend on its length). */
export const name = str((n, v) => checkName(n, v as string), true);
/** An IN name (canonical DNS name). */
export const inName = str((_n, v) => checkInName(v as string), false);
/** Human-readable error text, 0..200 bytes. */
export const text = str((_n, v) => checkText(v as string), false);

/** An address with its family: u8 4 or 6, then 4 or 16 bytes. */
export const addr: FieldKind<string> = {
  write: (w, v) => {
    const b = ipToBytes(v);
    w.u8(b.length === 4 ? 4 : 6);
    w.bytes(b);
  },
  read: (r, name) => {
    const fam = r.u8(`${name} family`);
    if (fam !== 4 && fam !== 6) bad(`${name} family ${fam} is neither 4 nor 6`);
    return bytesToIp(r.bytes(fam === 4 ? 4 : 16, name));
  },
  check: (name, v) => {
    if (typeof v !== 'string') bad(`${name} is not an address`);
    ipToBytes(v as string);
  },
};

/** A bare IPv4 address: 4 bytes (a u32 in network order), no family byte. */
export const ipv4: FieldKind<string> = {
  write: (w, v) => w.bytes(ipToBytes(v)),
  read: (r, name) => bytesToIp(r.bytes(4, name)),
  check: (name, v) => checkIPv4(name, v as string),
};

/** RESERVED's ports: u8 k (1..16), then k distinct ports. */
export const portList: FieldKind<number[]> = {
  write: (w, v) => {
    w.u8(v.length);
    for (const p of v) w.u16(p);
  },
  read: (r, name) => {
    const n = r.u8(`${name} count`);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(r.u16(name));
    return out;
  },
  check: (name, v) => {
    if (!Array.isArray(v) || v.length < 1 || v.length > MAX_PORTS_PER_RESERVE)
      bad(`${name}: ${Array.isArray(v) ? v.length : 'no list'} not in 1..${MAX_PORTS_PER_RESERVE}`);
    for (const p of v as unknown[]) port.check('port', p);
    if (new Set(v as number[]).size !== (v as number[]).length) bad(`${name} are not distinct`);
  },
};
