// Encoder and strict decoder of every GSRA control message (docs/protocol.md §5).
//
// decode() either returns a fully validated Message or throws ProtocolError; it never throws
// anything else and never reads outside the datagram. encode() validates too (a bug in the caller
// must not put a malformed message on the wire) and throws ProtocolError on bad input.
//
// Session messages (type >= 0x10, and AUTH_OK) end with a 16-byte MAC. The codec only carries it:
// encode() writes `mac` (zeros when absent) and crypto.sealMessage()/verifyMessage() compute it.

import { isIPv4, isIPv6 } from 'node:net';
import {
  COOKIE_LEN,
  HELLO_SIZE,
  MAC_LEN,
  MAGIC,
  MAX_DATAGRAM,
  MAX_IN_NAME_LEN,
  MAX_NAME_LEN,
  MAX_PORTS_PER_RESERVE,
  MAX_TEXT_LEN,
  MessageType,
  NONCE_LEN,
  PREFIX_LEN,
  PROOF_LEN,
  PROTOCOL_VERSION,
  Proto,
  Reason,
  SESSION_ID_LEN,
  X25519_PUB_LEN,
  messageTypeName,
  reasonName,
  type ProtoNumber,
  type ReasonName,
} from './constants.ts';
import { ProtocolError } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// Message structures

export interface Hello {
  type: 'HELLO';
  enNonce: Buffer; // 16
}
export interface Cookie {
  type: 'COOKIE';
  enNonce: Buffer; // 16, echo of HELLO
  cookieTime: number; // u32, unix seconds when the cookie was made
  cookie: Buffer; // 16, also the gateway's nonce
  gwPub: Buffer; // 32, gateway ephemeral X25519 public key for this epoch
}
export interface Auth {
  type: 'AUTH';
  enNonce: Buffer;
  cookieTime: number;
  cookie: Buffer;
  timestamp: number; // u64 ms since the Unix epoch
  enPub: Buffer; // 32
  gkVersion: number; // u32
  user: string;
  group: string;
  userProof: Buffer; // 16
  groupProof: Buffer; // 16
}
/** Refusal of a handshake (no session exists). authKind 1: tag is a MAC under the user's secret. */
export interface HandshakeError {
  type: 'HANDSHAKE_ERROR';
  ref: Buffer; // 16: echo of the EN nonce it answers (zeros if unknown)
  reason: ReasonName;
  text: string;
  authKind: 0 | 1;
  tag: Buffer; // 16 (zeros when authKind = 0)
}

/** Fields of the header every session message carries. */
export interface SessionHeader {
  sessionId: Buffer; // 8
  seq: bigint; // u64, per direction, starts at 1
  ack: bigint; // u64, seq of the peer message this answers, 0 = none
  timestamp: number; // u64 ms since the Unix epoch
  mac?: Buffer; // 16; filled by decode, written by sealMessage
}
export interface AuthOk extends SessionHeader {
  type: 'AUTH_OK';
  sessionLifetime: number; // u32 seconds
  keepaliveInterval: number; // u16 seconds
  reservationLifetime: number; // u32 seconds
}
export interface Reserve extends SessionHeader {
  type: 'RESERVE';
  proto: ProtoNumber;
  count: number; // 1..16
  /** The agent's VIN for inName (dotted IPv4, 4 bytes on the wire); '0.0.0.0' = the agent gives none. */
  vin: string;
  inName: string;
}
export interface Reserved extends SessionHeader {
  type: 'RESERVED';
  proto: ProtoNumber;
  lifetime: number; // u32 seconds
  serial: number; // u32: flow-key serial of ports[0]; ports[i] has serial + i
  inName: string;
  ports: number[]; // 1..16 distinct ports t, each 1..65535
}
export interface Bind extends SessionHeader {
  type: 'BIND';
  proto: ProtoNumber;
  t: number;
  s: number; // EN's source port PEN:s (informational)
}
export interface Bound extends SessionHeader {
  type: 'BOUND';
  proto: ProtoNumber;
  t: number;
  ghr: string; // GHR as seen by the gateway (IPv4 or IPv6 text)
  m: number; // HR's port
  d: number; // IN's service port, 0 = not known yet
}
export interface MapReq extends SessionHeader {
  type: 'MAP';
  proto: ProtoNumber;
  t: number;
  d: number;
  ghr: string;
  m: number;
}
export interface Mapped extends SessionHeader {
  type: 'MAPPED';
  proto: ProtoNumber;
  t: number;
  d: number;
  lifetime: number; // u32 seconds
}
export interface Keepalive extends SessionHeader {
  type: 'KEEPALIVE';
}
export interface KeepaliveAck extends SessionHeader {
  type: 'KEEPALIVE_ACK';
  sessionLifetime: number; // u32 seconds remaining
  reservations: number; // u16 live reservations/mappings of the session
}
export interface Release extends SessionHeader {
  type: 'RELEASE';
  scope: 0 | 1; // 0 = one port t, 1 = the whole session
  proto: ProtoNumber | 0; // 0 iff scope = 1
  t: number; // 0 iff scope = 1
}
export interface FtpAlias extends SessionHeader {
  type: 'FTP_ALIAS';
  ctrlT: number; // t of the FTP control connection
  aliasPort: number; // A*256+B: data port on PIN announced by PASV/EPSV
  dataT: number; // port reserved on GGR for the data connection
  serial: number; // u32 flow-key serial of dataT
  lifetime: number; // u32 seconds
}
export interface Ack extends SessionHeader {
  type: 'ACK';
}
export interface ErrorMsg extends SessionHeader {
  type: 'ERROR';
  reason: ReasonName;
  text: string;
}

export type SessionMessage =
  | AuthOk
  | Reserve
  | Reserved
  | Bind
  | Bound
  | MapReq
  | Mapped
  | Keepalive
  | KeepaliveAck
  | Release
  | FtpAlias
  | Ack
  | ErrorMsg;
export type Message = Hello | Cookie | Auth | HandshakeError | SessionMessage;

export const isSessionMessage = (m: Message): m is SessionMessage =>
  m.type !== 'HELLO' && m.type !== 'COOKIE' && m.type !== 'AUTH' && m.type !== 'HANDSHAKE_ERROR';

// ---------------------------------------------------------------------------------------------
// Validation helpers (shared by encoder and decoder)

const bad = (msg: string): never => {
  throw new ProtocolError('bad-value', msg);
};
const badStr = (msg: string): never => {
  throw new ProtocolError('bad-string', msg);
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** A user id or group name: 1..64 bytes of UTF-8 without control characters. */
export function checkName(field: string, s: string): void {
  const n = Buffer.byteLength(s, 'utf8');
  if (n < 1 || n > MAX_NAME_LEN) badStr(`${field}: length ${n} not in 1..${MAX_NAME_LEN}`);
  if (CONTROL.test(s)) badStr(`${field}: control character`);
}
/** An IN name: a canonical (lower-case, no trailing dot) LDH DNS name, 1..253 bytes. */
export function checkInName(s: string): void {
  if (s.length < 1 || s.length > MAX_IN_NAME_LEN || !DNS_NAME.test(s))
    badStr(`inName: not a canonical DNS name`);
}
function checkText(s: string): void {
  if (Buffer.byteLength(s, 'utf8') > MAX_TEXT_LEN) badStr(`text longer than ${MAX_TEXT_LEN} bytes`);
  if (CONTROL.test(s)) badStr('text: control character');
}
function checkProto(p: number): asserts p is ProtoNumber {
  if (p !== Proto.TCP && p !== Proto.UDP) bad(`proto ${p} is neither 6 (TCP) nor 17 (UDP)`);
}
function checkPort(field: string, p: number, allowZero = false): void {
  if (!Number.isInteger(p) || p < (allowZero ? 0 : 1) || p > 65535) bad(`${field} ${p} is not a port`);
}
function checkU32(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(`${field} ${v} is not a u32`);
}
function checkU16(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) bad(`${field} ${v} is not a u16`);
}
function checkBytes(field: string, b: Buffer, len: number): void {
  if (!Buffer.isBuffer(b) || b.length !== len) bad(`${field} must be ${len} bytes`);
}
function checkTimestamp(v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) bad(`timestamp ${v} out of range`);
}
function checkU64(field: string, v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) bad(`${field} is not a u64`);
}
/** A bare IPv4 address (4 bytes on the wire, no family byte), e.g. RESERVE's vin. */
export function checkIPv4(field: string, ip: string): void {
  if (typeof ip !== 'string' || ipToBytes(ip).length !== 4)
    bad(`${field}: ${String(ip)} is not an IPv4 address`);
}

// ---------------------------------------------------------------------------------------------
// IP address helpers (family byte 4/6 + 4/16 bytes on the wire)

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
  if (b.length === 4) return Array.from(b).join('.');
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
// Writer / Reader

class Writer {
  private parts: Buffer[] = [];
  u8(v: number) {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.parts.push(b);
  }
  u16(v: number) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
  }
  u64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.parts.push(b);
  }
  bytes(b: Buffer) {
    this.parts.push(Buffer.from(b));
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u8(b.length);
    this.parts.push(b);
  }
  addr(ip: string) {
    const b = ipToBytes(ip);
    this.u8(b.length === 4 ? 4 : 6);
    this.parts.push(b);
  }
  /** A bare IPv4 address: 4 bytes (= u32, network order), no family byte. */
  ipv4(ip: string) {
    this.parts.push(ipToBytes(ip));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number, what: string) {
    if (this.off + n > this.buf.length) throw new ProtocolError('too-short', `datagram ends inside ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.off++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  timestamp(): number {
    const v = this.u64('timestamp');
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad('timestamp out of range');
    return Number(v);
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = Buffer.from(this.buf.subarray(this.off, this.off + n));
    this.off += n;
    return b;
  }
  name(what: string): string {
    const s = this.str(what);
    checkName(what, s);
    return s;
  }
  str(what: string): string {
    const n = this.u8(`${what} length`);
    const b = this.bytes(n, what);
    try {
      return utf8.decode(b);
    } catch {
      return badStr(`${what}: invalid UTF-8`);
    }
  }
  addr(what: string): string {
    const fam = this.u8(`${what} family`);
    if (fam !== 4 && fam !== 6) bad(`${what} family ${fam} is neither 4 nor 6`);
    return bytesToIp(this.bytes(fam === 4 ? 4 : 16, what));
  }
  ipv4(what: string): string {
    return bytesToIp(this.bytes(4, what));
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
// Per-message validation (used by encode and decode)

function validate(m: Message): void {
  switch (m.type) {
    case 'HELLO':
      checkBytes('enNonce', m.enNonce, NONCE_LEN);
      return;
    case 'COOKIE':
      checkBytes('enNonce', m.enNonce, NONCE_LEN);
      checkU32('cookieTime', m.cookieTime);
      checkBytes('cookie', m.cookie, COOKIE_LEN);
      checkBytes('gwPub', m.gwPub, X25519_PUB_LEN);
      return;
    case 'AUTH':
      checkBytes('enNonce', m.enNonce, NONCE_LEN);
      checkU32('cookieTime', m.cookieTime);
      checkBytes('cookie', m.cookie, COOKIE_LEN);
      checkTimestamp(m.timestamp);
      checkBytes('enPub', m.enPub, X25519_PUB_LEN);
      checkU32('gkVersion', m.gkVersion);
      checkName('user', m.user);
      checkName('group', m.group);
      checkBytes('userProof', m.userProof, PROOF_LEN);
      checkBytes('groupProof', m.groupProof, PROOF_LEN);
      return;
    case 'HANDSHAKE_ERROR':
      checkBytes('ref', m.ref, NONCE_LEN);
      if (!(m.reason in Reason)) bad(`unknown reason ${String(m.reason)}`);
      checkText(m.text);
      if (m.authKind !== 0 && m.authKind !== 1) bad(`authKind ${String(m.authKind)}`);
      checkBytes('tag', m.tag, MAC_LEN);
      if (m.authKind === 0 && !m.tag.equals(Buffer.alloc(MAC_LEN)))
        bad('tag must be zero when authKind is 0');
      return;
    default:
      break;
  }
  checkBytes('sessionId', m.sessionId, SESSION_ID_LEN);
  checkU64('seq', m.seq);
  if (m.seq === 0n) bad('seq 0 is not allowed');
  checkU64('ack', m.ack);
  checkTimestamp(m.timestamp);
  if (m.mac !== undefined) checkBytes('mac', m.mac, MAC_LEN);
  switch (m.type) {
    case 'AUTH_OK':
      checkU32('sessionLifetime', m.sessionLifetime);
      checkU16('keepaliveInterval', m.keepaliveInterval);
      checkU32('reservationLifetime', m.reservationLifetime);
      if (m.sessionLifetime === 0 || m.keepaliveInterval === 0) bad('zero lifetime/interval');
      return;
    case 'RESERVE':
      checkProto(m.proto);
      if (!Number.isInteger(m.count) || m.count < 1 || m.count > MAX_PORTS_PER_RESERVE)
        bad(`count ${m.count} not in 1..${MAX_PORTS_PER_RESERVE}`);
      checkIPv4('vin', m.vin);
      checkInName(m.inName);
      return;
    case 'RESERVED': {
      checkProto(m.proto);
      checkU32('lifetime', m.lifetime);
      checkU32('serial', m.serial);
      checkInName(m.inName);
      if (!Array.isArray(m.ports) || m.ports.length < 1 || m.ports.length > MAX_PORTS_PER_RESERVE)
        bad(`ports: ${m.ports.length} not in 1..${MAX_PORTS_PER_RESERVE}`);
      m.ports.forEach((p) => checkPort('port', p));
      if (new Set(m.ports).size !== m.ports.length) bad('ports are not distinct');
      if (m.serial + m.ports.length - 1 > 0xffffffff) bad('serial range overflows u32');
      return;
    }
    case 'BIND':
      checkProto(m.proto);
      checkPort('t', m.t);
      checkPort('s', m.s);
      return;
    case 'BOUND':
      checkProto(m.proto);
      checkPort('t', m.t);
      ipToBytes(m.ghr);
      checkPort('m', m.m);
      checkPort('d', m.d, true);
      return;
    case 'MAP':
      checkProto(m.proto);
      checkPort('t', m.t);
      checkPort('d', m.d);
      ipToBytes(m.ghr);
      checkPort('m', m.m);
      return;
    case 'MAPPED':
      checkProto(m.proto);
      checkPort('t', m.t);
      checkPort('d', m.d);
      checkU32('lifetime', m.lifetime);
      return;
    case 'KEEPALIVE':
    case 'ACK':
      return;
    case 'KEEPALIVE_ACK':
      checkU32('sessionLifetime', m.sessionLifetime);
      checkU16('reservations', m.reservations);
      return;
    case 'RELEASE':
      if (m.scope === 0) {
        checkProto(m.proto);
        checkPort('t', m.t);
      } else if (m.scope === 1) {
        if (m.proto !== 0 || m.t !== 0) bad('RELEASE of a session must have proto 0 and t 0');
      } else bad(`scope ${String(m.scope)} is neither 0 nor 1`);
      return;
    case 'FTP_ALIAS':
      checkPort('ctrlT', m.ctrlT);
      checkPort('aliasPort', m.aliasPort);
      checkPort('dataT', m.dataT);
      checkU32('serial', m.serial);
      checkU32('lifetime', m.lifetime);
      return;
    case 'ERROR':
      if (!(m.reason in Reason)) bad(`unknown reason ${String(m.reason)}`);
      checkText(m.text);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// encode

/** Encodes a message. Session messages get `mac` (or 16 zero bytes, to be filled by sealMessage). */
export function encode(m: Message): Buffer {
  validate(m);
  const w = new Writer();
  w.u16(MAGIC);
  w.u8(PROTOCOL_VERSION);
  w.u8(MessageType[m.type]);
  switch (m.type) {
    case 'HELLO':
      w.bytes(m.enNonce);
      w.bytes(Buffer.alloc(HELLO_SIZE - PREFIX_LEN - NONCE_LEN));
      return w.done();
    case 'COOKIE':
      w.bytes(m.enNonce);
      w.u32(m.cookieTime);
      w.bytes(m.cookie);
      w.bytes(m.gwPub);
      return w.done();
    case 'AUTH':
      w.bytes(m.enNonce);
      w.u32(m.cookieTime);
      w.bytes(m.cookie);
      w.u64(BigInt(m.timestamp));
      w.bytes(m.enPub);
      w.u32(m.gkVersion);
      w.str(m.user);
      w.str(m.group);
      w.bytes(m.userProof);
      w.bytes(m.groupProof);
      return w.done();
    case 'HANDSHAKE_ERROR':
      w.bytes(m.ref);
      w.u16(Reason[m.reason]);
      w.str(m.text);
      w.u8(m.authKind);
      w.bytes(m.tag);
      return w.done();
    default:
      break;
  }
  w.bytes(m.sessionId);
  w.u64(m.seq);
  w.u64(m.ack);
  w.u64(BigInt(m.timestamp));
  switch (m.type) {
    case 'AUTH_OK':
      w.u32(m.sessionLifetime);
      w.u16(m.keepaliveInterval);
      w.u32(m.reservationLifetime);
      break;
    case 'RESERVE':
      w.u8(m.proto);
      w.u8(m.count);
      w.ipv4(m.vin);
      w.str(m.inName);
      break;
    case 'RESERVED':
      w.u8(m.proto);
      w.u32(m.lifetime);
      w.u32(m.serial);
      w.str(m.inName);
      w.u8(m.ports.length);
      m.ports.forEach((p) => w.u16(p));
      break;
    case 'BIND':
      w.u8(m.proto);
      w.u16(m.t);
      w.u16(m.s);
      break;
    case 'BOUND':
      w.u8(m.proto);
      w.u16(m.t);
      w.addr(m.ghr);
      w.u16(m.m);
      w.u16(m.d);
      break;
    case 'MAP':
      w.u8(m.proto);
      w.u16(m.t);
      w.u16(m.d);
      w.addr(m.ghr);
      w.u16(m.m);
      break;
    case 'MAPPED':
      w.u8(m.proto);
      w.u16(m.t);
      w.u16(m.d);
      w.u32(m.lifetime);
      break;
    case 'KEEPALIVE':
    case 'ACK':
      break;
    case 'KEEPALIVE_ACK':
      w.u32(m.sessionLifetime);
      w.u16(m.reservations);
      break;
    case 'RELEASE':
      w.u8(m.scope);
      w.u8(m.proto);
      w.u16(m.t);
      break;
    case 'FTP_ALIAS':
      w.u16(m.ctrlT);
      w.u16(m.aliasPort);
      w.u16(m.dataT);
      w.u32(m.serial);
      w.u32(m.lifetime);
      break;
    case 'ERROR':
      w.u16(Reason[m.reason]);
      w.str(m.text);
      break;
  }
  w.bytes(m.mac ?? Buffer.alloc(MAC_LEN));
  const out = w.done();
  if (out.length > MAX_DATAGRAM) throw new ProtocolError('too-long', `message of ${out.length} bytes`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// decode

/** Reads only the 4-byte prefix: what a receiver needs to route or refuse a datagram. */
export function peekPrefix(buf: Buffer): { version: number; type: number } {
  if (buf.length < PREFIX_LEN) throw new ProtocolError('too-short', 'datagram shorter than the prefix');
  if (buf.readUInt16BE(0) !== MAGIC) throw new ProtocolError('bad-magic', 'not a GSRA control message');
  return { version: buf.readUInt8(2), type: buf.readUInt8(3) };
}

function readProto(r: Reader): ProtoNumber {
  const p = r.u8('proto');
  checkProto(p);
  return p;
}

/** Decodes and strictly validates one datagram. Throws ProtocolError, and only ProtocolError. */
export function decode(buf: Buffer): Message {
  if (!Buffer.isBuffer(buf)) throw new ProtocolError('bad-value', 'input is not a Buffer');
  if (buf.length > MAX_DATAGRAM) throw new ProtocolError('too-long', `datagram of ${buf.length} bytes`);
  const { version, type } = peekPrefix(buf);
  if (version !== PROTOCOL_VERSION)
    throw new ProtocolError('unsupported-version', `version ${version}`, version);
  const name = messageTypeName(type);
  if (name === undefined) throw new ProtocolError('unknown-type', `type 0x${type.toString(16)}`);
  const r = new Reader(buf.subarray(PREFIX_LEN));
  let m: Message;
  switch (name) {
    case 'HELLO': {
      if (buf.length !== HELLO_SIZE)
        throw new ProtocolError(
          buf.length < HELLO_SIZE ? 'too-short' : 'trailing-bytes',
          `HELLO must be ${HELLO_SIZE} bytes`,
        );
      const enNonce = r.bytes(NONCE_LEN, 'enNonce');
      const pad = r.bytes(r.remaining, 'padding');
      if (pad.some((b) => b !== 0)) throw new ProtocolError('bad-padding', 'HELLO padding is not zero');
      m = { type: 'HELLO', enNonce };
      break;
    }
    case 'COOKIE':
      m = {
        type: 'COOKIE',
        enNonce: r.bytes(NONCE_LEN, 'enNonce'),
        cookieTime: r.u32('cookieTime'),
        cookie: r.bytes(COOKIE_LEN, 'cookie'),
        gwPub: r.bytes(X25519_PUB_LEN, 'gwPub'),
      };
      break;
    case 'AUTH':
      m = {
        type: 'AUTH',
        enNonce: r.bytes(NONCE_LEN, 'enNonce'),
        cookieTime: r.u32('cookieTime'),
        cookie: r.bytes(COOKIE_LEN, 'cookie'),
        timestamp: r.timestamp(),
        enPub: r.bytes(X25519_PUB_LEN, 'enPub'),
        gkVersion: r.u32('gkVersion'),
        user: r.name('user'),
        group: r.name('group'),
        userProof: r.bytes(PROOF_LEN, 'userProof'),
        groupProof: r.bytes(PROOF_LEN, 'groupProof'),
      };
      break;
    case 'HANDSHAKE_ERROR': {
      const ref = r.bytes(NONCE_LEN, 'ref');
      const code = r.u16('reason');
      const reason = reasonName(code) ?? bad(`unknown reason code ${code}`);
      const text = r.str('text');
      const authKind = r.u8('authKind');
      if (authKind !== 0 && authKind !== 1) bad(`authKind ${authKind}`);
      m = {
        type: 'HANDSHAKE_ERROR',
        ref,
        reason,
        text,
        authKind: authKind as 0 | 1,
        tag: r.bytes(MAC_LEN, 'tag'),
      };
      break;
    }
    default: {
      const h = {
        sessionId: r.bytes(SESSION_ID_LEN, 'sessionId'),
        seq: r.u64('seq'),
        ack: r.u64('ack'),
        timestamp: r.timestamp(),
      };
      if (r.remaining < MAC_LEN) throw new ProtocolError('too-short', 'datagram ends before the MAC');
      const body = new Reader(r.bytes(r.remaining - MAC_LEN, 'body'));
      const mac = r.bytes(MAC_LEN, 'mac');
      m = decodeSessionBody(name, h, body, mac);
      body.end();
      break;
    }
  }
  r.end();
  validate(m);
  return m;
}

function decodeSessionBody(
  name: Exclude<Message['type'], 'HELLO' | 'COOKIE' | 'AUTH' | 'HANDSHAKE_ERROR'>,
  h: { sessionId: Buffer; seq: bigint; ack: bigint; timestamp: number },
  r: Reader,
  mac: Buffer,
): SessionMessage {
  const base = { ...h, mac };
  switch (name) {
    case 'AUTH_OK':
      return {
        type: name,
        ...base,
        sessionLifetime: r.u32('sessionLifetime'),
        keepaliveInterval: r.u16('keepaliveInterval'),
        reservationLifetime: r.u32('reservationLifetime'),
      };
    case 'RESERVE':
      return {
        type: name,
        ...base,
        proto: readProto(r),
        count: r.u8('count'),
        vin: r.ipv4('vin'),
        inName: r.str('inName'),
      };
    case 'RESERVED': {
      const proto = readProto(r);
      const lifetime = r.u32('lifetime');
      const serial = r.u32('serial');
      const inName = r.str('inName');
      const n = r.u8('port count');
      const ports: number[] = [];
      for (let i = 0; i < n; i++) ports.push(r.u16('port'));
      return { type: name, ...base, proto, lifetime, serial, inName, ports };
    }
    case 'BIND':
      return { type: name, ...base, proto: readProto(r), t: r.u16('t'), s: r.u16('s') };
    case 'BOUND':
      return {
        type: name,
        ...base,
        proto: readProto(r),
        t: r.u16('t'),
        ghr: r.addr('ghr'),
        m: r.u16('m'),
        d: r.u16('d'),
      };
    case 'MAP':
      return {
        type: name,
        ...base,
        proto: readProto(r),
        t: r.u16('t'),
        d: r.u16('d'),
        ghr: r.addr('ghr'),
        m: r.u16('m'),
      };
    case 'MAPPED':
      return {
        type: name,
        ...base,
        proto: readProto(r),
        t: r.u16('t'),
        d: r.u16('d'),
        lifetime: r.u32('lifetime'),
      };
    case 'KEEPALIVE':
      return { type: name, ...base };
    case 'ACK':
      return { type: name, ...base };
    case 'KEEPALIVE_ACK':
      return {
        type: name,
        ...base,
        sessionLifetime: r.u32('sessionLifetime'),
        reservations: r.u16('reservations'),
      };
    case 'RELEASE': {
      const scope = r.u8('scope');
      const proto = r.u8('proto');
      const t = r.u16('t');
      if (scope !== 0 && scope !== 1) bad(`scope ${scope}`);
      if (scope === 0) checkProto(proto);
      else if (proto !== 0) bad('proto must be 0 for a session release');
      return { type: name, ...base, scope: scope as 0 | 1, proto: proto as ProtoNumber | 0, t };
    }
    case 'FTP_ALIAS':
      return {
        type: name,
        ...base,
        ctrlT: r.u16('ctrlT'),
        aliasPort: r.u16('aliasPort'),
        dataT: r.u16('dataT'),
        serial: r.u32('serial'),
        lifetime: r.u32('lifetime'),
      };
    case 'ERROR': {
      const code = r.u16('reason');
      const reason = reasonName(code) ?? bad(`unknown reason code ${code}`);
      return { type: name, ...base, reason, text: r.str('text') };
    }
  }
}
