// Every GSRA control message, written once (docs/protocol.md §5): its type code, whether it is a
// session message (the 36-byte header before its body and a 16-byte MAC after it), its fields in
// wire order with their kinds, and the rules that tie fields together. The TypeScript types of the
// messages, the encoder, the decoder and the validation are all derived from this table.

import {
  COOKIE_LEN,
  HELLO_SIZE,
  MAC_LEN,
  NONCE_LEN,
  PROOF_LEN,
  RESET_TOKEN_LEN,
  SESSION_ID_LEN,
  X25519_PUB_LEN,
} from './constants.ts';
import {
  addr,
  bad,
  bytes,
  count,
  inName,
  ipv4,
  name,
  oneOf,
  port,
  portList,
  portOrZero,
  proto,
  reason,
  text,
  timestamp,
  u16,
  u32,
  u64,
  type FieldKind,
  type ValueOf,
} from './fields.ts';

interface Layout {
  code: number;
  /** Session messages carry the session header and end with a MAC. */
  session: boolean;
  /** HELLO: padded with zeros to exactly this many bytes. */
  paddedTo?: number;
  fields: Record<string, FieldKind<unknown>>;
  /** Rules across fields (a field's own range is its kind's business). */
  check?: (m: never) => void;
}

/** The header every session message carries, after the 4-byte prefix. */
export const SESSION_HEADER = {
  sessionId: bytes(SESSION_ID_LEN),
  seq: u64(true),
  ack: u64(),
  timestamp,
} as const;

type Extra = Pick<Layout, 'paddedTo' | 'check'>;
const handshake = <F extends Layout['fields']>(code: number, fields: F, extra: Extra = {}) => ({
  code,
  session: false as const,
  fields,
  ...extra,
});
const session = <F extends Layout['fields']>(code: number, fields: F, extra: Extra = {}) => ({
  code,
  session: true as const,
  fields,
  ...extra,
});

type Fields<F> = { -readonly [K in keyof F]: ValueOf<F[K]> };

export const MESSAGES = {
  HELLO: handshake(0x01, { enNonce: bytes(NONCE_LEN) }, { paddedTo: HELLO_SIZE }),
  COOKIE: handshake(0x02, {
    enNonce: bytes(NONCE_LEN), // echo of HELLO
    cookieTime: u32, // unix seconds when the cookie was made
    cookie: bytes(COOKIE_LEN), // also the gateway's nonce
    gwPub: bytes(X25519_PUB_LEN), // gateway ephemeral X25519 public key for this epoch
  }),
  AUTH: handshake(0x03, {
    enNonce: bytes(NONCE_LEN),
    cookieTime: u32,
    cookie: bytes(COOKIE_LEN),
    timestamp,
    enPub: bytes(X25519_PUB_LEN),
    gkVersion: u32,
    user: name,
    group: name,
    userProof: bytes(PROOF_LEN),
    groupProof: bytes(PROOF_LEN),
  }),
  /**
   * Refusal of a handshake (no session exists). authKind 1: tag is a MAC under the user's secret;
   * authKind 2 (unknown-session only): tag is the session's reset token from its AUTH_OK.
   */
  HANDSHAKE_ERROR: handshake(
    0x05,
    {
      ref: bytes(NONCE_LEN), // the EN nonce it answers (zeros if unknown)
      reason,
      text,
      authKind: oneOf([0, 1, 2] as const),
      tag: bytes(MAC_LEN), // zeros when authKind = 0
    },
    {
      check: (m: { authKind: number; tag: Buffer; reason: string }) => {
        if (m.authKind === 0 && !m.tag.equals(Buffer.alloc(MAC_LEN)))
          bad('tag must be zero when authKind is 0');
        if (m.authKind === 2 && m.reason !== 'unknown-session')
          bad('authKind 2 (reset token) is only for unknown-session');
      },
    },
  ),
  AUTH_OK: session(
    0x04,
    {
      sessionLifetime: u32,
      keepaliveInterval: u16,
      reservationLifetime: u32,
      /** The session's stateless reset token: what proves a later unknown-session refusal. */
      resetToken: bytes(RESET_TOKEN_LEN),
    },
    {
      check: (m: { sessionLifetime: number; keepaliveInterval: number }) => {
        if (m.sessionLifetime === 0 || m.keepaliveInterval === 0) bad('zero lifetime/interval');
      },
    },
  ),
  RESERVE: session(0x10, {
    proto,
    count,
    /** The agent's VIN for inName (dotted IPv4); '0.0.0.0' = the agent gives none. */
    vin: ipv4,
    inName,
  }),
  RESERVED: session(
    0x11,
    {
      proto,
      lifetime: u32, // seconds
      serial: u32, // flow-key serial of ports[0]; ports[i] has serial + i
      inName,
      ports: portList,
    },
    {
      check: (m: { serial: number; ports: number[] }) => {
        if (m.serial + m.ports.length - 1 > 0xffffffff) bad('serial range overflows u32');
      },
    },
  ),
  BIND: session(0x12, { proto, t: port, s: port /* EN's source port PEN:s (informational) */ }),
  BOUND: session(0x13, {
    proto,
    t: port,
    ghr: addr, // GHR as seen by the gateway
    m: port, // HR's port
    d: portOrZero, // IN's service port, 0 = not known yet
  }),
  MAP: session(0x14, { proto, t: port, d: port, ghr: addr, m: port }),
  MAPPED: session(0x15, { proto, t: port, d: port, lifetime: u32 }),
  KEEPALIVE: session(0x16, {}),
  KEEPALIVE_ACK: session(0x17, {
    sessionLifetime: u32, // seconds remaining
    reservations: u16, // live reservations of the session
    observed: addr, // the KEEPALIVE's source address as the gateway saw it (GHR)
    observedPort: port, // and its source port: the agent sees its public address change (roaming)
  }),
  RELEASE: session(
    0x18,
    {
      scope: oneOf([0, 1] as const), // 0 = one port t, 1 = the whole session
      proto: oneOf([0, 6, 17] as const), // 0 iff scope = 1
      t: portOrZero, // 0 iff scope = 1
    },
    {
      check: (m: { scope: number; proto: number; t: number }) => {
        if (m.scope === 0) {
          proto.check('proto', m.proto);
          port.check('t', m.t);
        } else if (m.proto !== 0 || m.t !== 0) bad('RELEASE of a session must have proto 0 and t 0');
      },
    },
  ),
  FTP_ALIAS: session(0x19, {
    ctrlT: port, // t of the FTP control connection
    aliasPort: port, // A*256+B: data port on PIN announced by PASV/EPSV
    dataT: port, // port reserved on GGR for the data connection
    serial: u32, // flow-key serial of dataT
    lifetime: u32, // seconds
  }),
  ACK: session(0x1f, {}),
  ERROR: session(0x7f, { reason, text }),
} as const satisfies Record<string, Layout>;

type Table = typeof MESSAGES;
export type MessageName = keyof Table;

/** Fields of the header every session message carries. */
export type SessionHeader = Fields<typeof SESSION_HEADER> & {
  /** 16 bytes; filled by decode, written by the session channel (zeros until then). */
  mac?: Buffer;
};

type Simplify<T> = { [K in keyof T]: T[K] } & unknown;
/** The message called K, as the codec reads and writes it. */
export type MessageOf<K extends MessageName> = Simplify<
  { type: K } & (Table[K]['session'] extends true ? SessionHeader : unknown) & Fields<Table[K]['fields']>
>;

export type Message = { [K in MessageName]: MessageOf<K> }[MessageName];
export type SessionMessage = Extract<Message, { seq: bigint }>;
export type Hello = MessageOf<'HELLO'>;
export type Auth = MessageOf<'AUTH'>;
export type HandshakeError = MessageOf<'HANDSHAKE_ERROR'>;

/** Type codes by name (docs/protocol.md §5). */
export const MessageType = Object.fromEntries(Object.entries(MESSAGES).map(([n, l]) => [n, l.code])) as {
  readonly [K in MessageName]: Table[K]['code'];
};

const byCode = new Map<number, MessageName>(
  Object.entries(MESSAGES).map(([n, l]) => [l.code, n as MessageName]),
);
export const messageTypeName = (code: number): MessageName | undefined => byCode.get(code);

export const isSessionMessage = (m: Message): m is SessionMessage => MESSAGES[m.type].session;
