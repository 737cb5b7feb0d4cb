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

type Fields = Record<string, FieldKind<unknown>>;
type Values = Record<string, unknown>;

function checkFields(fields: Fields, m: Values): void {
  for (const [name, kind] of Object.entries(fields)) kind.check(name, m[name]);
}

function validate(m: Message): void {
  const layout = MESSAGES[m.type] ?? bad(`unknown message type ${String((m as Values).type)}`);
  const values = m as unknown as Values;
  if (layout.session) {
    checkFields(SESSION_HEADER, values);
    if (values.mac !== undefined) bytes(MAC_LEN).check('mac', values.mac);
  }
  checkFields(layout.fields, values);
  (layout as { check?: (m: Values) => void }).check?.(values);
}

function writeFields(w: Writer, fields: Fields, m: Values): void {
  for (const [name, kind] of Object.entries(fields)) kind.write(w, m[name]);
}
function readFields(r: Reader, fields: Fields, into: Values): void {
  for (const [name, kind] of Object.entries(fields)) into[name] = kind.read(r, name);
}

/** Encodes a message. Session messages get `mac` (or 16 zero bytes, to be filled by sealing). */
export function encode(m: Message): Buffer {
  validate(m);
  const layout = MESSAGES[m.type];
  const values = m as unknown as Values;
  const w = new Writer();
  w.u16(MAGIC);
  w.u8(PROTOCOL_VERSION);
  w.u8(layout.code);
  if (layout.session) writeFields(w, SESSION_HEADER, values);
  writeFields(w, layout.fields, values);
  if (layout.paddedTo !== undefined) w.bytes(Buffer.alloc(layout.paddedTo - w.done().length));
  if (layout.session) w.bytes((values.mac as Buffer | undefined) ?? Buffer.alloc(MAC_LEN));
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
  const layout = MESSAGES[name];
  const m: Values = { type: name };
  const r = new Reader(buf.subarray(PREFIX_LEN));
  if (layout.paddedTo !== undefined) {
    if (buf.length !== layout.paddedTo)
      throw new ProtocolError(
        buf.length < layout.paddedTo ? 'too-short' : 'trailing-bytes',
        `${name} must be ${layout.paddedTo} bytes`,
      );
    readFields(r, layout.fields, m);
    if (r.bytes(r.remaining, 'padding').some((b) => b !== 0))
      throw new ProtocolError('bad-padding', `${name} padding is not zero`);
  } else if (layout.session) {
    readFields(r, SESSION_HEADER, m);
    if (r.remaining < MAC_LEN) throw new ProtocolError('too-short', 'datagram ends before the MAC');
    const body = new Reader(r.bytes(r.remaining - MAC_LEN, 'body'));
    readFields(body, layout.fields, m);
    body.end();
    m.mac = r.bytes(MAC_LEN, 'mac');
  } else {
    readFields(r, layout.fields, m);
  }
  r.end();
  const msg = m as unknown as Message;
  validate(msg);
  return msg;
}
