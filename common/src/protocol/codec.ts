// Encoder and strict decoder of every GSRA control message (docs/protocol.md §4, §5), driven by
// the message table (messages.ts).
//
// decode() either returns a fully validated Message or throws ProtocolError; it never throws
// anything else and never reads outside the datagram. encode() validates too (a bug in the caller
// must not put a malformed message on the wire) and throws ProtocolError on bad input.
//
// Session messages (type >= 0x10, and AUTH_OK) end with a 16-byte MAC. The codec only carries it:
// encode() writes `mac` (zeros when absent) and the session channel computes it.

import { MAC_LEN, MAGIC, MAX_DATAGRAM, PREFIX_LEN, PROTOCOL_VERSION } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { Reader, Writer, bad, bytes, type FieldKind } from './fields.ts';
import { MESSAGES, SESSION_HEADER, messageTypeName, type Message } from './messages.ts';

type Values = Record<string, unknown>;
type Field = readonly [name: string, kind: FieldKind<unknown>];

/** A message's layout as the codec runs it: the table's entry with its fields in order. */
interface Plan {
  code: number;
  session: boolean;
  paddedTo: number | undefined;
  body: readonly Field[];
  check: ((m: Values) => void) | undefined;
}
const HEADER: readonly Field[] = Object.entries(SESSION_HEADER);
const MAC = bytes(MAC_LEN);
const PLANS = new Map<string, Plan>(
  Object.entries(MESSAGES).map(([name, l]) => [
    name,
    {
      code: l.code,
      session: l.session,
      paddedTo: l.paddedTo,
      body: Object.entries(l.fields),
      check: (l as { check?: (m: Values) => void }).check,
    },
  ]),
);

function planOf(type: unknown): Plan {
  return PLANS.get(type as string) ?? bad(`unknown message type ${String(type)}`);
}

function validate(plan: Plan, m: Values): void {
  if (plan.session) {
    for (const [name, kind] of HEADER) kind.check(name, m[name]);
    if (m.mac !== undefined) MAC.check('mac', m.mac);
  }
  for (const [name, kind] of plan.body) kind.check(name, m[name]);
  plan.check?.(m);
}
function writeFields(w: Writer, fields: readonly Field[], m: Values): void {
  for (const [name, kind] of fields) kind.write(w, m[name]);
}
function readFields(r: Reader, fields: readonly Field[], into: Values): void {
  for (const [name, kind] of fields) into[name] = kind.read(r, name);
}

/** Encodes a message. Session messages get `mac` (or 16 zero bytes, to be filled by sealing). */
export function encode(m: Message): Buffer {
  const values = m as unknown as Values;
  const plan = planOf(values.type);
  validate(plan, values);
  const w = new Writer();
  w.u16(MAGIC);
  w.u8(PROTOCOL_VERSION);
  w.u8(plan.code);
  if (plan.session) writeFields(w, HEADER, values);
  writeFields(w, plan.body, values);
  if (plan.paddedTo !== undefined) w.zeros(plan.paddedTo - w.length);
  if (plan.session) {
    if (values.mac !== undefined) w.bytes(values.mac as Buffer);
    else w.zeros(MAC_LEN);
  }
  const out = w.done();
  if (out.length > MAX_DATAGRAM) throw new ProtocolError('too-long', `message of ${out.length} bytes`);
  return out;
}

/** Reads only the 4-byte prefix: what a receiver needs to route or refuse a datagram. */
export function peekPrefix(buf: Buffer): { version: number; type: number } {
  if (buf.length < PREFIX_LEN) throw new ProtocolError('too-short', 'datagram shorter than the prefix');
  if (buf.readUInt16BE(0) !== MAGIC) throw new ProtocolError('bad-magic', 'not a GSRA control message');
  return { version: buf.readUInt8(2), type: buf.readUInt8(3) };
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
  const plan = planOf(name);
  const m: Values = { type: name };
  const r = new Reader(buf.subarray(PREFIX_LEN));
  if (plan.paddedTo !== undefined) {
    if (buf.length !== plan.paddedTo)
      throw new ProtocolError(
        buf.length < plan.paddedTo ? 'too-short' : 'trailing-bytes',
        `${name} must be ${plan.paddedTo} bytes`,
      );
    readFields(r, plan.body, m);
    if (r.bytes(r.remaining, 'padding').some((b) => b !== 0))
      throw new ProtocolError('bad-padding', `${name} padding is not zero`);
  } else if (plan.session) {
    readFields(r, HEADER, m);
    if (r.remaining < MAC_LEN) throw new ProtocolError('too-short', 'datagram ends before the MAC');
    const body = new Reader(r.bytes(r.remaining - MAC_LEN, 'body'));
    readFields(body, plan.body, m);
    body.end();
    m.mac = r.bytes(MAC_LEN, 'mac');
  } else {
    readFields(r, plan.body, m);
  }
  r.end();
  validate(plan, m);
  return m as unknown as Message;
}
