// What the gateway's control state machine (GatewayControl) asks of the daemon and tells it:
// the directory callbacks, the options, the datagrams to send and the events to act on.

import type { ProtoNumber, ReasonName } from './constants.ts';
import type { Reservation } from './reservation-table.ts';

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
/** May a user reach an IN, and where is it on the LAN (PIN)? */
export type ReachDecision =
  { allow: true; pin: string } | { allow: false; reason: ReasonName; text?: string };
export interface ReserveRequest {
  sessionId: string;
  user: string;
  userDn: string;
  group: string;
  inName: string;
  /** The IN's LAN address: a port still cooling toward it (TIME_WAIT) is not handed out. */
  pin: string;
  proto: ProtoNumber;
  count: number;
  en: Endpoint;
}
export type ReserveOutcome = { ports: number[] } | { reason: 'no-ports' | 'rate-limited'; text?: string };
/** Ports given back to the pool, with the owner they were reserved for (user, EN address). */
export interface ReleasedPorts {
  user: string;
  en: Endpoint;
  /**
   * `coolToward`: a TCP connection ran between PGR:t and this PIN and its server may hold
   * TIME_WAIT for it (it closed first, or nobody knows): the port must not lead to that PIN
   * again before it cooled.
   */
  ports: Array<{ proto: ProtoNumber; t: number; coolToward?: string }>;
}

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
  /** Takes `count` free ports t on GGR for this session (the daemon's port pool only allocates). */
  reservePorts(req: ReserveRequest): ReserveOutcome;
  /** Gives ports back to the pool (released, expired, refused, or handed out in excess). */
  releasePorts(r: ReleasedPorts): void;
}

export interface GatewayOptions {
  policy: GatewayPolicy;
  /** Secret of the stateless cookie (32 random bytes; random per process if omitted). */
  cookieSecret?: Buffer;
  /**
   * The gateway's long-term reset key (32 random bytes), from which every session's reset token
   * is derived (docs/protocol.md §6.6). Keep it across restarts (gsra-gateway stores it in its
   * state directory): then a restarted gateway can prove to an agent that its session is gone.
   * Random per process if omitted.
   */
  resetKey?: Buffer;
  /** Control port on GGR (BIND probes arrive on any other local port: the reserved port t). */
  controlPort?: number;
  sessionLifetimeSec?: number; // absolute; re-login after (default 8 h)
  sessionIdleSec?: number; // no authenticated message for this long → session ends (default 120 s)
  keepaliveIntervalSec?: number; // told to the agent (default 25 s)
  reservationLifetimeSec?: number; // unused reservation (default 120 s), renewed by KEEPALIVE
  mappingLifetimeSec?: number; // mapped reservation (default 300 s), renewed by KEEPALIVE
  maxReservationsPerSession?: number; // beyond: rate-limited (default 256)
  maxSessionsPerUser?: number; // beyond: AUTH refused rate-limited (default 16)
  responseCacheSize?: number; // per session (default 32)
  /** Injectable randomness (tests). */
  randomBytes?: (n: number) => Buffer;
}
export type GatewayConfig = Required<
  Omit<GatewayOptions, 'policy' | 'cookieSecret' | 'resetKey' | 'randomBytes'>
>;

export interface Outgoing {
  to: Endpoint;
  data: Buffer;
  /**
   * An answer to an unauthenticated datagram whose source has not shown that it receives what
   * the gateway sends (COOKIE, a refusal before the cookie check, unknown-session,
   * unsupported-version): the source may be spoofed, and the answer undeliverable. The daemon
   * sends these last and sheds them under load; everything else is session traffic.
   */
  unproven?: true;
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
  /** A new row of the reservation table: the daemon hands it to the data plane. */
  | { kind: 'reservation'; record: Reservation }
  /**
   * A row left the table (its port is already back in the pool). `cause`: RELEASE of the port,
   * its lifetime ran out, its session ended, or the directory now refuses it.
   */
  | {
      kind: 'reservation-ended';
      sessionId: string;
      proto: ProtoNumber;
      t: number;
      /** lost: the data plane could not carry the flow on (a restart without its engine state). */
      reason: 'released' | 'expired' | 'lost';
      cause: ReservationEndCause;
      record: Reservation;
    }
  | {
      kind: 'binding';
      sessionId: string;
      proto: ProtoNumber;
      t: number;
      ghr: string;
      m: number;
      via: 'in-band' | 'bind';
      /** The binding it replaced (`ghr:m`): the flow roamed (docs/pccom.md §6.1). */
      from?: string;
    }
  | { kind: 'mapping'; record: Reservation }
  | { kind: 'peer-moved'; sessionId: string; from: string; to: string }
  /** An AUTH from `addr` carried a valid cookie: that address receives what the gateway sends. */
  | { kind: 'source-proven'; addr: string }
  /** A limit that protects the gateway refused a request (also a 'decision' with rate-limited). */
  | { kind: 'limit'; limit: 'per-session'; user: string; sessionId: string; held: number; max: number }
  | { kind: 'agent-error'; sessionId: string; reason: ReasonName; text: string }
  | { kind: 'undelivered'; sessionId: string; type: string }
  /** The agent acknowledged a message the gateway sent on its own (BOUND, FTP_ALIAS) with this seq. */
  | { kind: 'delivered'; sessionId: string; type: string; seq: bigint }
  | { kind: 'dropped'; from: string; reason: string; detail?: string }
  | { kind: 'policy-error'; detail: string };

/** Why a row of the reservation table ended (the audit line's close reason starts from it). */
/** Why a row ended: engine = the engine ended its flow; restart = a restart could not carry it. */
export type ReservationEndCause = 'release' | 'lifetime' | 'session' | 'policy' | 'engine' | 'restart';

export interface GatewayResult {
  send: Outgoing[];
  events: GatewayEvent[];
}

export const emptyResult = (): GatewayResult => ({ send: [], events: [] });
