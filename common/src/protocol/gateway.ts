// GatewayControl: the gateway side of the control protocol as a pure, I/O-free state machine.
//
// The daemon feeds it datagrams (with source endpoint, local port and time), engine events
// (in-band binding, FTP ALG) and clock ticks; it returns the datagrams to send and structured
// events (decisions for the audit log, reservations with their flow keys for the engine, ...).
// It performs no I/O, reads no clock and keeps no per-client state before a valid AUTH.
// Directory / policy questions go through the synchronous GatewayPolicy callbacks, which the
// daemon answers from its LDAP cache.

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import {
  COOKIE_EPOCH_MS,
  DEFAULT_PORT,
  MAC_LEN,
  NONCE_LEN,
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  TIME_WINDOW_MS,
  type ProtoNumber,
  type ReasonName,
} from './constants.ts';
import {
  decode,
  encode,
  isSessionMessage,
  peekPrefix,
  type Auth,
  type HandshakeError,
  type Hello,
  type SessionMessage,
} from './codec.ts';
import {
  constantTimeEqual,
  deriveControlKeys,
  deriveFlowKeys,
  deriveSessionSecret,
  generateEphemeral,
  groupProof,
  makeCookie,
  refusalTag,
  ReplayWindow,
  sealMessage,
  transcriptHash,
  userProof,
  verifyMessage,
  x25519,
  type ControlKeys,
  type EphemeralKey,
  type FlowKeys,
} from './crypto.ts';
import { ProtocolError } from './errors.ts';
import { Retransmitter } from './retransmit.ts';

// ---------------------------------------------------------------------------------------------
// Public types

export interface Endpoint {
  addr: string;
  port: number;
}
export const endpointString = (e: Endpoint): string =>
  e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`;

export interface GroupKeyVersion {
  version: number;
  key: Buffer;
  /** ms since the epoch after which this version is no longer accepted (rotation grace end). */
  notAfter?: number;
}
export interface DirectoryUser {
  userDn: string;
  /**
   * The user's id in the directory's own form (OpenLDAP uid, AD sAMAccountName). Sessions,
   * per-user limits and the audit log use it, whatever form the agent sent. Default: as sent.
   */
  id?: string;
  /** The per-user secret from LDAP (≥ 16 random bytes; never a password). */
  secret: Buffer;
  /**
   * Set when the account may not be used (in no GSRA group, disabled, locked or expired in the
   * directory): AUTH is refused with it after the user proof verified, and every request of the
   * user's sessions too.
   */
  refusal?: Refusal;
  groups: Array<{ name: string; keys: GroupKeyVersion[] }>;
}
/** A refusal with the words the agent shows (≤ 200 bytes). */
export interface Refusal {
  reason: ReasonName;
  text: string;
}
/**
 * lookupUser's answer when the gateway cannot say anything about the user (e.g. its directory is
 * unreachable): refused before any proof, with the same answer for every id.
 */
export interface UserLookupRefusal {
  refused: ReasonName;
  text: string;
}
export type ReachDecision = { allow: true } | { allow: false; reason: ReasonName; text?: string };
export interface ReserveRequest {
  sessionId: string;
  user: string;
  userDn: string;
  group: string;
  inName: string;
  proto: ProtoNumber;
  count: number;
  en: Endpoint;
}
export type ReserveOutcome = { ports: number[] } | { reason: 'no-ports' | 'rate-limited'; text?: string };

/** What the gateway daemon provides (answered synchronously from its directory cache). */
export interface GatewayPolicy {
  /**
   * The user's entry by any id form the directory accepts (answered from the daemon's policy
   * snapshot, never with I/O); null if there is no such user; a refusal if no user can be
   * looked up now.
   */
  lookupUser(userId: string): DirectoryUser | UserLookupRefusal | null;
  /** May `user` (a member of `group`) reach IN `inName`? Deny reasons: unknown-in, not-in-group, policy-denied. */
  mayReach(user: string, group: string, inName: string): ReachDecision;
  /** Takes `count` free ports t on GGR for this flow set (the daemon owns the port pool). */
  reservePorts(req: ReserveRequest): ReserveOutcome;
  /** Gives ports back to the pool (released or expired). */
  releasePorts(ports: Array<{ proto: ProtoNumber; t: number }>): void;
}

export interface GatewayOptions {
  policy: GatewayPolicy;
  /** Secret of the stateless cookie (32 random bytes; random per process if omitted). */
  cookieSecret?: Buffer;
  /** Control port on GGR (BIND probes arrive on any other local port: the reserved port t). */
  controlPort?: number;
  sessionLifetimeSec?: number; // absolute; re-login after (default 8 h)
  sessionIdleSec?: number; // no authenticated message for this long → session ends (default 120 s)
  keepaliveIntervalSec?: number; // told to the agent (default 25 s)
  reservationLifetimeSec?: number; // unused reservation (default 120 s), renewed by KEEPALIVE
  mappingLifetimeSec?: number; // installed mapping (default 300 s), renewed by KEEPALIVE
  maxReservationsPerSession?: number; // beyond: rate-limited (default 256)
  maxSessionsPerUser?: number; // beyond: AUTH refused rate-limited (default 16)
  responseCacheSize?: number; // per session (default 32)
  /** Injectable randomness (tests). */
  randomBytes?: (n: number) => Buffer;
}

export interface Outgoing {
  to: Endpoint;
  data: Buffer;
}

export interface ReservationRecord {
  sessionId: string;
  user: string;
  userDn: string;
  group: string;
  inName: string;
  proto: ProtoNumber;
  t: number;
  serial: number;
  keys: FlowKeys;
  expiresAt: number;
  en: Endpoint;
  /** Set once the flow's binding is known (in-band or BIND). */
  binding?: { ghr: string; m: number };
  /** Set once the translation is installed. */
  mapping?: { d: number };
  /** For an FTP data reservation: the IN's data port announced by PASV/EPSV. */
  aliasPort?: number;
  /**
   * The agent's VIN for inName as sent in RESERVE (an FTP data reservation inherits its control
   * reservation's); the FTP ALG writes it into PASV replies. Absent when the agent sent 0.0.0.0.
   */
  vin?: string;
}

export type GatewayEvent =
  | {
      kind: 'decision';
      step: 'auth' | 'reserve' | 'map' | 'ftp-alias';
      user: string;
      group: string;
      in: string;
      en: string;
      decision: 'allow' | 'deny';
      reason: ReasonName | 'ok';
      sessionId?: string;
    }
  | {
      kind: 'session-up';
      sessionId: string;
      user: string;
      userDn: string;
      group: string;
      gkVersion: number;
      en: string;
    }
  | { kind: 'session-down'; sessionId: string; user: string; reason: 'released' | 'expired' | 'idle' }
  | { kind: 'reservation'; record: ReservationRecord }
  | {
      kind: 'reservation-ended';
      sessionId: string;
      proto: ProtoNumber;
      t: number;
      reason: 'released' | 'expired';
    }
  | {
      kind: 'binding';
      sessionId: string;
      proto: ProtoNumber;
      t: number;
      ghr: string;
      m: number;
      via: 'in-band' | 'bind';
    }
  | { kind: 'mapping'; record: ReservationRecord }
  | { kind: 'peer-moved'; sessionId: string; from: string; to: string }
  | { kind: 'agent-error'; sessionId: string; reason: ReasonName; text: string }
  | { kind: 'undelivered'; sessionId: string; type: string }
  | { kind: 'dropped'; from: string; reason: string; detail?: string }
  | { kind: 'policy-error'; detail: string };

export interface GatewayResult {
  send: Outgoing[];
  events: GatewayEvent[];
}

// ---------------------------------------------------------------------------------------------
// Internal state

interface Session {
  id: Buffer;
  idHex: string;
  user: string;
  userDn: string;
  group: string;
  gkVersion: number;
  secret: Buffer;
  keys: ControlKeys;
  peer: Endpoint;
  createdAt: number;
  expiresAt: number; // absolute lifetime end
  lastSeen: number;
  replay: ReplayWindow;
  sendSeq: bigint;
  responses: Map<bigint, Buffer>; // request seq → response datagram
  reservations: Map<string, ReservationRecord>; // `${proto}/${t}`
  nextSerial: number;
  outbound: Retransmitter<bigint, { type: string }>;
}

interface AuthCacheEntry {
  authDigest: Buffer; // the AUTH datagram, to tell a duplicate from a different AUTH
  response: Buffer;
  expiresAt: number;
}

const FAILED: unique symbol = Symbol('policy callback failed');

const portKey = (proto: number, t: number) => `${proto}/${t}`;

/** Gateway-side protocol engine. One instance per gateway (all sessions). */
export class GatewayControl {
  private readonly policy: GatewayPolicy;
  /** Exceptions thrown by policy callbacks since the last public call returned (reported as events). */
  private policyErrors: string[] = [];
  private readonly cookieSecret: Buffer;
  private readonly rnd: (n: number) => Buffer;
  readonly controlPort: number;
  private readonly cfg: Required<
    Pick<
      GatewayOptions,
      | 'sessionLifetimeSec'
      | 'sessionIdleSec'
      | 'keepaliveIntervalSec'
      | 'reservationLifetimeSec'
      | 'mappingLifetimeSec'
      | 'maxReservationsPerSession'
      | 'maxSessionsPerUser'
      | 'responseCacheSize'
    >
  >;
  private readonly ephemerals = new Map<number, EphemeralKey>(); // epoch → key (at most 2)
  private readonly sessions = new Map<string, Session>();
  private readonly byPort = new Map<string, Session>(); // `${proto}/${t}` → session
  private readonly authCache = new Map<string, AuthCacheEntry>(); // cookie hex → AUTH_OK

  constructor(opts: GatewayOptions) {
    this.policy = opts.policy;
    this.rnd = opts.randomBytes ?? nodeRandomBytes;
    this.cookieSecret = opts.cookieSecret ?? this.rnd(32);
    this.controlPort = opts.controlPort ?? DEFAULT_PORT;
    this.cfg = {
      sessionLifetimeSec: opts.sessionLifetimeSec ?? 8 * 3600,
      sessionIdleSec: opts.sessionIdleSec ?? 120,
      keepaliveIntervalSec: opts.keepaliveIntervalSec ?? 25,
      reservationLifetimeSec: opts.reservationLifetimeSec ?? 120,
      mappingLifetimeSec: opts.mappingLifetimeSec ?? 300,
      maxReservationsPerSession: opts.maxReservationsPerSession ?? 256,
      maxSessionsPerUser: opts.maxSessionsPerUser ?? 16,
      responseCacheSize: opts.responseCacheSize ?? 32,
    };
  }

  /** Counters of held state (a flood of spoofed HELLO/AUTH must leave all of them at 0). */
  stats(): { sessions: number; reservations: number; authCache: number; ephemeralKeys: number } {
    return {
      sessions: this.sessions.size,
      reservations: this.byPort.size,
      authCache: this.authCache.size,
      ephemeralKeys: this.ephemerals.size,
    };
  }

  /** The reservation record of (proto, t), if any (the engine asks when a first packet arrives). */
  reservation(proto: ProtoNumber, t: number): ReservationRecord | undefined {
    return this.byPort.get(portKey(proto, t))?.reservations.get(portKey(proto, t));
  }

  // -------------------------------------------------------------------------------------------
  // Datagrams

  /**
   * Handles one datagram received from `from` on local UDP port `localPort` (the control port,
   * or a reserved port t for a BIND probe). Never throws on bad input.
   */
  handleDatagram(
    data: Buffer,
    from: Endpoint,
    now: number,
    localPort: number = this.controlPort,
  ): GatewayResult {
    return this.flushPolicyErrors(this.handleDatagramInner(data, from, now, localPort));
  }

  private handleDatagramInner(data: Buffer, from: Endpoint, now: number, localPort: number): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    let version: number;
    try {
      version = peekPrefix(data).version;
    } catch {
      out.events.push({ kind: 'dropped', from: endpointString(from), reason: 'not-gsra' });
      return out;
    }
    if (version !== PROTOCOL_VERSION) {
      const reply = this.handshakeError(
        Buffer.alloc(NONCE_LEN),
        'unsupported-version',
        SUPPORTED_VERSIONS.join(','),
      );
      if (reply.length <= data.length) out.send.push({ to: from, data: reply });
      out.events.push({ kind: 'dropped', from: endpointString(from), reason: 'unsupported-version' });
      return out;
    }
    let msg;
    try {
      msg = decode(data);
    } catch (e) {
      const detail = e instanceof ProtocolError ? e.code : 'error';
      out.events.push({ kind: 'dropped', from: endpointString(from), reason: 'malformed', detail });
      return out;
    }
    if (localPort !== this.controlPort && msg.type !== 'BIND') {
      out.events.push({ kind: 'dropped', from: endpointString(from), reason: 'not-a-probe' });
      return out;
    }
    switch (msg.type) {
      case 'HELLO':
        this.onHello(msg, from, now, out);
        break;
      case 'AUTH':
        this.onAuth(msg, data, from, now, out);
        break;
      case 'COOKIE':
      case 'HANDSHAKE_ERROR':
      case 'AUTH_OK':
        out.events.push({
          kind: 'dropped',
          from: endpointString(from),
          reason: 'wrong-direction',
          detail: msg.type,
        });
        break;
      default:
        if (isSessionMessage(msg)) this.onSessionMessage(msg, data, from, now, localPort, out);
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Handshake

  private ephemeral(epoch: number, create: boolean): EphemeralKey | undefined {
    let k = this.ephemerals.get(epoch);
    if (!k && create) {
      k = generateEphemeral();
      this.ephemerals.set(epoch, k);
      for (const e of this.ephemerals.keys()) if (e < epoch - 1) this.ephemerals.delete(e);
    }
    return k;
  }

  private onHello(msg: Hello, from: Endpoint, now: number, out: GatewayResult): void {
    const cookieTime = Math.floor(now / 1000);
    const eph = this.ephemeral(Math.floor((cookieTime * 1000) / COOKIE_EPOCH_MS), true)!;
    const cookie = makeCookie(
      this.cookieSecret,
      from.addr,
      from.port,
      cookieTime,
      msg.enNonce,
      eph.publicKey,
    );
    out.send.push({
      to: from,
      data: encode({ type: 'COOKIE', enNonce: msg.enNonce, cookieTime, cookie, gwPub: eph.publicKey }),
    });
  }

  private handshakeError(
    ref: Buffer,
    reason: ReasonName,
    text: string,
    auth?: { userSecret: Buffer; th: Buffer },
  ): Buffer {
    const m: HandshakeError = {
      type: 'HANDSHAKE_ERROR',
      ref,
      reason,
      text,
      authKind: auth ? 1 : 0,
      tag: Buffer.alloc(MAC_LEN),
    };
    const buf = encode(m);
    if (auth)
      refusalTag(auth.userSecret, auth.th, buf.subarray(0, buf.length - MAC_LEN)).copy(
        buf,
        buf.length - MAC_LEN,
      );
    return buf;
  }

  private onAuth(msg: Auth, data: Buffer, from: Endpoint, now: number, out: GatewayResult): void {
    const en = endpointString(from);
    let who = msg.user; // the canonical id once the user proved its secret
    const refuse = (reason: ReasonName, text: string, auth?: { userSecret: Buffer; th: Buffer }) => {
      out.send.push({ to: from, data: this.handshakeError(msg.enNonce, reason, text, auth) });
      out.events.push({
        kind: 'decision',
        step: 'auth',
        user: who,
        group: msg.group,
        in: '',
        en,
        decision: 'deny',
        reason,
      });
    };
    // 1. Stateless cookie: address, port, age, epoch key.
    const epoch = Math.floor((msg.cookieTime * 1000) / COOKIE_EPOCH_MS);
    const nowEpoch = Math.floor(now / COOKIE_EPOCH_MS);
    if (msg.cookieTime * 1000 > now + TIME_WINDOW_MS) return refuse('bad-cookie', 'cookie from the future');
    const eph = epoch >= nowEpoch - 1 && epoch <= nowEpoch ? this.ephemeral(epoch, false) : undefined;
    if (!eph) {
      // too old, or made before a restart of the gateway: the agent starts over with HELLO
      return refuse('cookie-expired', 'cookie expired; send HELLO again');
    }
    const cookie = makeCookie(
      this.cookieSecret,
      from.addr,
      from.port,
      msg.cookieTime,
      msg.enNonce,
      eph.publicKey,
    );
    if (!constantTimeEqual(cookie, msg.cookie))
      return refuse('bad-cookie', 'cookie does not match this address');
    // 2. Duplicate AUTH (retransmission): answer from the cache, never create a second session.
    const cacheKey = msg.cookie.toString('hex');
    const cached = this.authCache.get(cacheKey);
    if (cached) {
      if (cached.authDigest.equals(data)) out.send.push({ to: from, data: cached.response });
      else refuse('replay', 'cookie already used');
      return;
    }
    // 3. Freshness of the agent's own timestamp.
    if (Math.abs(msg.timestamp - now) > TIME_WINDOW_MS)
      return refuse('stale-timestamp', 'clock difference > 60 s');
    // 4. User and proofs.
    const user = this.ask(() => this.policy.lookupUser(msg.user));
    if (user === FAILED) return refuse('internal', 'directory unavailable');
    if (!user) return refuse('unknown-user', `no user ${msg.user}`);
    if ('refused' in user) return refuse(user.refused, user.text);
    const dh = x25519(eph.privateKey, msg.enPub);
    if (!dh) return refuse('bad-proof', 'invalid ephemeral key');
    const th = transcriptHash(eph.publicKey, data);
    if (!constantTimeEqual(userProof(user.secret, th, dh), msg.userProof))
      return refuse('bad-proof', 'user proof does not verify');
    const auth = { userSecret: user.secret, th };
    const userId = user.id ?? msg.user;
    who = userId;
    if (user.refusal) return refuse(user.refusal.reason, user.refusal.text, auth);
    const group = user.groups.find((g) => g.name === msg.group);
    if (!group) return refuse('not-in-group', `${msg.user} is not a member of ${msg.group}`, auth);
    const key = group.keys.find((k) => k.version === msg.gkVersion);
    const newest = Math.max(...group.keys.map((k) => k.version), -1);
    if (!key) {
      if (msg.gkVersion > newest)
        return refuse(
          'unknown-key-version',
          `group key version ${msg.gkVersion} unknown (newest ${newest})`,
          auth,
        );
      return refuse(
        'stale-key-version',
        `group key version ${msg.gkVersion} retired (current ${newest})`,
        auth,
      );
    }
    if (key.notAfter !== undefined && now > key.notAfter)
      return refuse(
        'stale-key-version',
        `group key version ${msg.gkVersion} expired (current ${newest})`,
        auth,
      );
    if (!constantTimeEqual(groupProof(key.key, th, dh), msg.groupProof))
      return refuse('bad-proof', 'group proof does not verify', auth);
    let userSessions = 0;
    for (const x of this.sessions.values()) if (x.user === userId) userSessions++;
    if (userSessions >= this.cfg.maxSessionsPerUser)
      return refuse('rate-limited', `${userId} has ${userSessions} sessions`, auth);
    // 5. Session.
    const secret = deriveSessionSecret(dh, key.key, user.secret, msg.enNonce, msg.cookie, th);
    const id = this.rnd(8);
    const s: Session = {
      id,
      idHex: id.toString('hex'),
      user: userId,
      userDn: user.userDn,
      group: msg.group,
      gkVersion: msg.gkVersion,
      secret,
      keys: deriveControlKeys(secret),
      peer: { ...from },
      createdAt: now,
      expiresAt: now + this.cfg.sessionLifetimeSec * 1000,
      lastSeen: now,
      replay: new ReplayWindow(),
      sendSeq: 0n,
      responses: new Map(),
      reservations: new Map(),
      nextSerial: 0,
      outbound: new Retransmitter(),
    };
    this.sessions.set(s.idHex, s);
    const response = this.sealed(
      s,
      {
        type: 'AUTH_OK',
        ack: 0n,
        sessionLifetime: this.cfg.sessionLifetimeSec,
        keepaliveInterval: this.cfg.keepaliveIntervalSec,
        reservationLifetime: this.cfg.reservationLifetimeSec,
      },
      now,
    );
    this.authCache.set(cacheKey, {
      authDigest: Buffer.from(data),
      response,
      expiresAt: (epoch + 2) * COOKIE_EPOCH_MS,
    });
    out.send.push({ to: from, data: response });
    out.events.push(
      {
        kind: 'decision',
        step: 'auth',
        user: s.user,
        group: s.group,
        in: '',
        en,
        decision: 'allow',
        reason: 'ok',
        sessionId: s.idHex,
      },
      {
        kind: 'session-up',
        sessionId: s.idHex,
        user: s.user,
        userDn: s.userDn,
        group: s.group,
        gkVersion: s.gkVersion,
        en,
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // Session messages

  /** Encodes and MACs a message from the gateway in session s (assigns the next seq). */
  private sealed(
    s: Session,
    body: DistributiveOmit<SessionMessage, 'sessionId' | 'seq' | 'timestamp' | 'mac'>,
    now: number,
  ): Buffer {
    s.sendSeq++;
    const m = { ...body, sessionId: s.id, seq: s.sendSeq, timestamp: now } as SessionMessage;
    return sealMessage(encode(m), s.keys.gwToEn);
  }

  private onSessionMessage(
    msg: SessionMessage,
    data: Buffer,
    from: Endpoint,
    now: number,
    localPort: number,
    out: GatewayResult,
  ): void {
    const en = endpointString(from);
    const s = this.sessions.get(msg.sessionId.toString('hex'));
    if (!s) {
      // Unauthenticated by necessity; ref = session id so only someone who knows it is told.
      const ref = Buffer.concat([msg.sessionId, Buffer.alloc(NONCE_LEN - msg.sessionId.length)]);
      const reply = this.handshakeError(ref, 'unknown-session', '');
      if (reply.length <= data.length) out.send.push({ to: from, data: reply });
      out.events.push({ kind: 'dropped', from: en, reason: 'unknown-session' });
      return;
    }
    const fromPeer = from.addr === s.peer.addr && from.port === s.peer.port;
    const error = (reason: ReasonName, text: string, ack: bigint) => {
      // errors about unauthenticated input go only to the session's known peer (no reflection)
      if (fromPeer)
        out.send.push({ to: s.peer, data: this.sealed(s, { type: 'ERROR', ack, reason, text }, now) });
    };
    if (!verifyMessage(data, s.keys.enToGw)) {
      out.events.push({ kind: 'dropped', from: en, reason: 'bad-mac', detail: s.idHex });
      return error('bad-mac', 'message authentication failed', 0n);
    }
    if (msg.type === 'AUTH_OK') {
      out.events.push({ kind: 'dropped', from: en, reason: 'wrong-direction', detail: msg.type });
      return;
    }
    if (Math.abs(msg.timestamp - now) > TIME_WINDOW_MS) {
      out.events.push({ kind: 'dropped', from: en, reason: 'stale-timestamp', detail: s.idHex });
      return error('stale-timestamp', 'clock difference > 60 s', msg.seq);
    }
    if (!s.replay.check(msg.seq)) {
      const cached = s.responses.get(msg.seq);
      if (cached) {
        out.send.push({ to: from, data: cached }); // duplicate of an answered request
        return;
      }
      if (msg.type === 'ACK') return; // a duplicated ACK needs no answer
      out.events.push({ kind: 'dropped', from: en, reason: 'replay', detail: `${s.idHex} seq ${msg.seq}` });
      return error('replay', `sequence number ${msg.seq} already seen or too old`, msg.seq);
    }
    s.replay.accept(msg.seq);
    s.lastSeen = now;
    if (localPort === this.controlPort && !fromPeer && msg.seq === s.replay.highestSeen) {
      // the home NAT re-mapped the control flow (or EN roamed): follow the newest authenticated source
      out.events.push({ kind: 'peer-moved', sessionId: s.idHex, from: endpointString(s.peer), to: en });
      s.peer = { ...from };
    }
    const respond = (buf: Buffer) => {
      s.responses.set(msg.seq, buf);
      if (s.responses.size > this.cfg.responseCacheSize) s.responses.delete(s.responses.keys().next().value!);
      out.send.push({ to: s.peer, data: buf });
    };
    const fail = (reason: ReasonName, text: string) =>
      respond(this.sealed(s, { type: 'ERROR', ack: msg.seq, reason, text }, now));

    switch (msg.type) {
      case 'RESERVE':
        return this.onReserve(s, msg.seq, msg.inName, msg.proto, msg.count, msg.vin, now, out, respond, fail);
      case 'BIND': {
        if (localPort === this.controlPort) {
          // probe of the control flow itself: report its mapping, record nothing
          return respond(
            this.sealed(
              s,
              { type: 'BOUND', ack: msg.seq, proto: msg.proto, t: msg.t, ghr: from.addr, m: from.port, d: 0 },
              now,
            ),
          );
        }
        const r = s.reservations.get(portKey(msg.proto, msg.t));
        if (r && r.proto !== 17)
          return fail('unknown-reservation', 'BIND probes are for UDP flows; TCP binds in-band');
        if (!r || localPort !== msg.t)
          return fail('unknown-reservation', `no reservation ${msg.proto}/${msg.t}`);
        r.binding = { ghr: from.addr, m: from.port };
        out.events.push({
          kind: 'binding',
          sessionId: s.idHex,
          proto: r.proto,
          t: r.t,
          ghr: from.addr,
          m: from.port,
          via: 'bind',
        });
        return respond(
          this.sealed(
            s,
            {
              type: 'BOUND',
              ack: msg.seq,
              proto: r.proto,
              t: r.t,
              ghr: from.addr,
              m: from.port,
              d: r.mapping?.d ?? 0,
            },
            now,
          ),
        );
      }
      case 'MAP': {
        const r = s.reservations.get(portKey(msg.proto, msg.t));
        if (!r) return fail('unknown-reservation', `no reservation ${msg.proto}/${msg.t}`);
        if (!r.binding || r.binding.ghr !== msg.ghr || r.binding.m !== msg.m)
          return fail('not-bound', 'binding unknown or different; send BIND first');
        const v = this.recheck(s, r.inName, now);
        out.events.push(this.decisionEvent(s, 'map', r.inName, v.reason));
        if (v.reason !== 'ok') return fail(v.reason, v.text);
        r.mapping = { d: msg.d };
        r.expiresAt = now + this.cfg.mappingLifetimeSec * 1000;
        out.events.push({ kind: 'mapping', record: r });
        return respond(
          this.sealed(
            s,
            {
              type: 'MAPPED',
              ack: msg.seq,
              proto: r.proto,
              t: r.t,
              d: msg.d,
              lifetime: this.cfg.mappingLifetimeSec,
            },
            now,
          ),
        );
      }
      case 'KEEPALIVE': {
        for (const r of s.reservations.values())
          r.expiresAt =
            now + (r.mapping ? this.cfg.mappingLifetimeSec : this.cfg.reservationLifetimeSec) * 1000;
        return respond(
          this.sealed(
            s,
            {
              type: 'KEEPALIVE_ACK',
              ack: msg.seq,
              sessionLifetime: Math.max(0, Math.floor((s.expiresAt - now) / 1000)),
              reservations: Math.min(0xffff, s.reservations.size),
            },
            now,
          ),
        );
      }
      case 'RELEASE': {
        if (msg.scope === 1) {
          respond(this.sealed(s, { type: 'ACK', ack: msg.seq }, now));
          this.endSession(s, 'released', out);
          return;
        }
        const r = s.reservations.get(portKey(msg.proto, msg.t));
        if (r) this.endReservation(s, r, 'released', out);
        return respond(this.sealed(s, { type: 'ACK', ack: msg.seq }, now)); // idempotent
      }
      case 'ACK': {
        s.outbound.take(msg.ack);
        return;
      }
      case 'ERROR':
        out.events.push({ kind: 'agent-error', sessionId: s.idHex, reason: msg.reason, text: msg.text });
        if (msg.ack !== 0n) s.outbound.take(msg.ack);
        return;
      default:
        out.events.push({ kind: 'dropped', from: en, reason: 'wrong-direction', detail: msg.type });
        return;
    }
  }

  /** Re-checks the directory for a new reservation or mapping: revocation and removal act at once. */
  /**
   * Decides every reservation and mapping again (call after the directory changed): the ones the
   * policy now refuses end at once ('reservation-ended', ports back to the pool), each with a
   * 'decision' event naming the reason. Sessions stay up; their next requests are decided anew.
   */
  recheckAll(now: number, keep?: (r: ReservationRecord, reason: ReasonName) => boolean): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    for (const s of [...this.sessions.values()]) {
      let pooled: { reason: ReasonName; text: string } | undefined;
      for (const r of [...s.reservations.values()]) {
        const v = this.recheck(s, r.inName, now);
        const decision = v.reason;
        if (decision === 'ok' || keep?.(r, decision)) continue;
        out.events.push(this.decisionEvent(s, 'map', r.inName, decision));
        this.endReservation(s, r, 'released', out);
        // Tell the agent (one-shot ERROR, as for a refused in-band binding, §8.1): a live flow
        // by its port, unused pooled ports once per session, so it stops using them.
        if (r.mapping)
          this.unsolicitedError(s, decision, `flow ${r.proto}/${r.t} refused: ${v.text}`, now, out);
        else pooled ??= { reason: decision, text: v.text };
      }
      if (pooled) this.unsolicitedError(s, pooled.reason, `reservations refused: ${pooled.text}`, now, out);
    }
    return out;
  }

  private unsolicitedError(
    s: Session,
    reason: ReasonName,
    text: string,
    now: number,
    out: GatewayResult,
  ): void {
    const t =
      Buffer.byteLength(text) <= 200
        ? text
        : Buffer.from(text)
            .subarray(0, 200)
            .toString()
            .replace(/\uFFFD$/, '');
    out.send.push({ to: s.peer, data: this.sealed(s, { type: 'ERROR', ack: 0n, reason, text: t }, now) });
  }

  /** The directory's verdict on a request of session s for IN inName, with the words for the agent. */
  private recheck(s: Session, inName: string, now: number): { reason: ReasonName | 'ok'; text: string } {
    const no = (reason: ReasonName, text = `refused: ${reason}`) => ({ reason, text });
    const u = this.ask(() => this.policy.lookupUser(s.user));
    if (u === FAILED) return no('internal');
    if (!u) return no('unknown-user', `no user ${s.user}`);
    if ('refused' in u) return no(u.refused, u.text);
    if (u.refusal) return no(u.refusal.reason, u.refusal.text);
    const g = u.groups.find((x) => x.name === s.group);
    if (!g) return no('not-in-group');
    const k = g.keys.find((x) => x.version === s.gkVersion);
    if (!k || (k.notAfter !== undefined && now > k.notAfter)) return no('stale-key-version');
    const d = this.ask(() => this.policy.mayReach(s.user, s.group, inName));
    if (d === FAILED) return no('internal');
    return d.allow ? { reason: 'ok', text: '' } : no(d.reason, d.text);
  }

  private decisionEvent(
    s: Session,
    step: 'reserve' | 'map' | 'ftp-alias',
    inName: string,
    reason: ReasonName | 'ok',
  ): GatewayEvent {
    return {
      kind: 'decision',
      step,
      user: s.user,
      group: s.group,
      in: inName,
      en: endpointString(s.peer),
      decision: reason === 'ok' ? 'allow' : 'deny',
      reason,
      sessionId: s.idHex,
    };
  }

  private onReserve(
    s: Session,
    _seq: bigint,
    inName: string,
    proto: ProtoNumber,
    count: number,
    vin: string,
    now: number,
    out: GatewayResult,
    respond: (b: Buffer) => void,
    fail: (r: ReasonName, t: string) => void,
  ): void {
    const v = this.recheck(s, inName, now);
    let decision = v.reason;
    let text = v.text;
    if (decision === 'ok' && s.reservations.size + count > this.cfg.maxReservationsPerSession)
      decision = 'rate-limited';
    let ports: number[] = [];
    if (decision === 'ok') {
      const r = this.ask(() =>
        this.policy.reservePorts({
          sessionId: s.idHex,
          user: s.user,
          userDn: s.userDn,
          group: s.group,
          inName,
          proto,
          count,
          en: { ...s.peer },
        }),
      );
      if (r === FAILED) decision = 'internal';
      else if ('reason' in r) {
        decision = r.reason;
        if (r.text) text = r.text;
      } else {
        const ok = r.ports.filter(
          (t) => Number.isInteger(t) && t > 0 && t < 65536 && !this.byPort.has(portKey(proto, t)),
        );
        if (ok.length !== r.ports.length || new Set(ok).size !== ok.length) {
          // the pool handed out a bad or busy port: give the good ones back, treat as exhausted
          this.release([...new Set(ok)].map((t) => ({ proto, t })));
          ports = [];
        } else {
          ports = ok.slice(0, count);
          // more than asked for: give the rest back
          if (ok.length > count) this.release(ok.slice(count).map((t) => ({ proto, t })));
        }
        if (ports.length === 0) decision = 'no-ports';
      }
    }
    out.events.push(this.decisionEvent(s, 'reserve', inName, decision));
    if (decision !== 'ok') return fail(decision, text || `refused: ${decision}`);
    const serial = s.nextSerial;
    s.nextSerial += ports.length;
    const expiresAt = now + this.cfg.reservationLifetimeSec * 1000;
    ports.forEach((t, i) => {
      const record: ReservationRecord = {
        sessionId: s.idHex,
        user: s.user,
        userDn: s.userDn,
        group: s.group,
        inName,
        proto,
        t,
        serial: serial + i,
        keys: deriveFlowKeys(s.secret, proto, t, serial + i),
        expiresAt,
        en: { ...s.peer },
      };
      if (vin !== '0.0.0.0') record.vin = vin;
      s.reservations.set(portKey(proto, t), record);
      this.byPort.set(portKey(proto, t), s);
      out.events.push({ kind: 'reservation', record });
    });
    respond(
      this.sealed(
        s,
        {
          type: 'RESERVED',
          ack: _seq,
          proto,
          lifetime: this.cfg.reservationLifetimeSec,
          serial,
          inName,
          ports,
        },
        now,
      ),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Engine-driven events

  /**
   * The engine verified the first packet of a flow to GGR:t (authenticated with the flow keys of
   * reservation (proto, t)) that came from GHR:m and carried the original destination port d.
   * Records binding and mapping and tells the agent (BOUND, retransmitted until ACKed).
   */
  onInbandBinding(
    b: { proto: ProtoNumber; t: number; ghr: string; m: number; d: number },
    now: number,
  ): GatewayResult {
    return this.flushPolicyErrors(this.onInbandBindingInner(b, now));
  }

  private onInbandBindingInner(
    b: { proto: ProtoNumber; t: number; ghr: string; m: number; d: number },
    now: number,
  ): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    const s = this.byPort.get(portKey(b.proto, b.t));
    const r = s?.reservations.get(portKey(b.proto, b.t));
    if (!s || !r) {
      out.events.push({
        kind: 'dropped',
        from: `${b.ghr}:${b.m}`,
        reason: 'unknown-reservation',
        detail: `${b.proto}/${b.t}`,
      });
      return out;
    }
    const v = this.recheck(s, r.inName, now);
    const decision = v.reason;
    out.events.push(this.decisionEvent(s, 'map', r.inName, decision));
    if (decision !== 'ok') {
      // the directory changed since RESERVE: no translation; tell the agent (one-shot ERROR)
      this.endReservation(s, r, 'released', out);
      this.unsolicitedError(s, decision, `flow ${b.proto}/${b.t} refused: ${v.text}`, now, out);
      return out;
    }
    r.binding = { ghr: b.ghr, m: b.m };
    r.mapping = { d: b.d };
    r.expiresAt = now + this.cfg.mappingLifetimeSec * 1000;
    out.events.push({
      kind: 'binding',
      sessionId: s.idHex,
      proto: b.proto,
      t: b.t,
      ghr: b.ghr,
      m: b.m,
      via: 'in-band',
    });
    out.events.push({ kind: 'mapping', record: r });
    this.sendReliable(
      s,
      { type: 'BOUND', ack: 0n, proto: b.proto, t: b.t, ghr: b.ghr, m: b.m, d: b.d },
      now,
      out,
    );
    return out;
  }

  /**
   * The FTP ALG saw a PASV/EPSV reply on the control connection of reservation (TCP, ctrlT)
   * announcing data port `aliasPort` on PIN. Reserves a data port dataT for the same session and
   * tells the agent (FTP_ALIAS, retransmitted until ACKed). The ALG rewrites the reply only if
   * a record is returned, and only to `record.vin` (the VIN the agent sent in RESERVE, inherited
   * from the control reservation); a record without vin leaves the reply unchanged.
   */
  ftpAlias(
    a: { ctrlT: number; aliasPort: number },
    now: number,
  ): GatewayResult & { record?: ReservationRecord } {
    const out = this.ftpAliasInner(a, now);
    this.flushPolicyErrors(out);
    return out;
  }

  private ftpAliasInner(
    a: { ctrlT: number; aliasPort: number },
    now: number,
  ): GatewayResult & { record?: ReservationRecord } {
    const out: GatewayResult & { record?: ReservationRecord } = { send: [], events: [] };
    const s = this.byPort.get(portKey(6, a.ctrlT));
    const ctrl = s?.reservations.get(portKey(6, a.ctrlT));
    if (!s || !ctrl) return out;
    let decision = this.recheck(s, ctrl.inName, now).reason;
    let t = 0;
    if (decision === 'ok') {
      const r = this.ask(() =>
        this.policy.reservePorts({
          sessionId: s.idHex,
          user: s.user,
          userDn: s.userDn,
          group: s.group,
          inName: ctrl.inName,
          proto: 6,
          count: 1,
          en: { ...s.peer },
        }),
      );
      if (r === FAILED) decision = 'internal';
      else if ('reason' in r) decision = r.reason;
      else if (r.ports.length < 1 || this.byPort.has(portKey(6, r.ports[0]!))) decision = 'no-ports';
      else t = r.ports[0]!;
    }
    out.events.push(this.decisionEvent(s, 'ftp-alias', ctrl.inName, decision));
    if (decision !== 'ok') return out;
    const serial = s.nextSerial++;
    const record: ReservationRecord = {
      sessionId: s.idHex,
      user: s.user,
      userDn: s.userDn,
      group: s.group,
      inName: ctrl.inName,
      proto: 6,
      t,
      serial,
      keys: deriveFlowKeys(s.secret, 6, t, serial),
      expiresAt: now + this.cfg.reservationLifetimeSec * 1000,
      en: { ...s.peer },
      mapping: { d: a.aliasPort },
      aliasPort: a.aliasPort,
    };
    if (ctrl.vin !== undefined) record.vin = ctrl.vin;
    s.reservations.set(portKey(6, t), record);
    this.byPort.set(portKey(6, t), s);
    out.events.push({ kind: 'reservation', record });
    out.record = record;
    this.sendReliable(
      s,
      {
        type: 'FTP_ALIAS',
        ack: 0n,
        ctrlT: a.ctrlT,
        aliasPort: a.aliasPort,
        dataT: t,
        serial,
        lifetime: this.cfg.reservationLifetimeSec,
      },
      now,
      out,
    );
    return out;
  }

  private sendReliable(
    s: Session,
    body: DistributiveOmit<SessionMessage, 'sessionId' | 'seq' | 'timestamp' | 'mac'>,
    now: number,
    out: GatewayResult,
  ): void {
    const data = this.sealed(s, body, now);
    s.outbound.add(s.sendSeq, data, { type: body.type }, now);
    out.send.push({ to: s.peer, data });
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  /** Runs retransmissions and expiries due at `now`. Call at nextDeadline() (or periodically). */
  poll(now: number): GatewayResult {
    return this.flushPolicyErrors(this.pollInner(now));
  }

  private pollInner(now: number): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    for (const [k, e] of this.authCache) if (now >= e.expiresAt) this.authCache.delete(k);
    const nowEpoch = Math.floor(now / COOKIE_EPOCH_MS);
    for (const e of this.ephemerals.keys()) if (e < nowEpoch - 1) this.ephemerals.delete(e); // forward secrecy
    for (const s of [...this.sessions.values()]) {
      if (now >= s.expiresAt) {
        this.endSession(s, 'expired', out);
        continue;
      }
      if (now - s.lastSeen >= this.cfg.sessionIdleSec * 1000) {
        this.endSession(s, 'idle', out);
        continue;
      }
      for (const r of [...s.reservations.values()])
        if (now >= r.expiresAt) this.endReservation(s, r, 'expired', out);
      const { resend, expired } = s.outbound.poll(now);
      for (const { item } of resend) out.send.push({ to: s.peer, data: item.data });
      for (const { item } of expired)
        out.events.push({ kind: 'undelivered', sessionId: s.idHex, type: item.info.type });
    }
    return out;
  }

  /** The earliest time poll() has something to do, or null. */
  nextDeadline(): number | null {
    let d: number | null = null;
    const min = (x: number) => {
      if (d === null || x < d) d = x;
    };
    for (const e of this.authCache.values()) min(e.expiresAt);
    for (const e of this.ephemerals.keys()) min((e + 2) * COOKIE_EPOCH_MS); // erase old private keys
    for (const s of this.sessions.values()) {
      min(s.expiresAt);
      min(s.lastSeen + this.cfg.sessionIdleSec * 1000);
      for (const r of s.reservations.values()) min(r.expiresAt);
      const o = s.outbound.nextDeadline();
      if (o !== null) min(o);
    }
    return d;
  }

  /** Calls a policy callback; an exception becomes FAILED (and a 'policy-error' event), never a crash. */
  private ask<T>(fn: () => T): T | typeof FAILED {
    try {
      return fn();
    } catch (e) {
      this.policyErrors.push(e instanceof Error ? e.message : String(e));
      return FAILED;
    }
  }
  private release(ports: Array<{ proto: ProtoNumber; t: number }>): void {
    if (ports.length) this.ask(() => this.policy.releasePorts(ports));
  }
  private flushPolicyErrors(out: GatewayResult): GatewayResult {
    for (const detail of this.policyErrors) out.events.push({ kind: 'policy-error', detail });
    this.policyErrors = [];
    return out;
  }

  private endReservation(
    s: Session,
    r: ReservationRecord,
    reason: 'released' | 'expired',
    out: GatewayResult,
  ): void {
    s.reservations.delete(portKey(r.proto, r.t));
    this.byPort.delete(portKey(r.proto, r.t));
    this.release([{ proto: r.proto, t: r.t }]);
    out.events.push({ kind: 'reservation-ended', sessionId: s.idHex, proto: r.proto, t: r.t, reason });
  }

  private endSession(s: Session, reason: 'released' | 'expired' | 'idle', out: GatewayResult): void {
    for (const r of [...s.reservations.values()])
      this.endReservation(s, r, reason === 'released' ? 'released' : 'expired', out);
    s.outbound.clear();
    this.sessions.delete(s.idHex);
    out.events.push({ kind: 'session-down', sessionId: s.idHex, user: s.user, reason });
  }
}

/** Omit that distributes over a union (keeps the discriminant of each member). */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
