// GatewayControl: the gateway side of the control protocol as a pure, I/O-free state machine.
//
// The daemon feeds it datagrams (with source endpoint, local port and time), engine events
// (in-band binding, FTP ALG) and clock ticks; it returns the datagrams to send and structured
// events (decisions for the audit log, reservations for the data plane, ...). It performs no I/O,
// reads no clock and keeps no per-client state before a valid AUTH. Directory questions go
// through the synchronous GatewayPolicy callbacks, which the daemon answers from its LDAP cache.
//
// The work is done by phase: gateway-handshake.ts (HELLO, COOKIE, AUTH), gateway-session.ts
// (session messages through the session channel), gateway-reservations.ts (reserved ports, which
// live in one ReservationTable).

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import {
  DEFAULT_PORT,
  NONCE_LEN,
  PROTOCOL_VERSION,
  REFUSAL_VERSION,
  SUPPORTED_VERSIONS,
} from './constants.ts';
import { decode, peekPrefix } from './codec.ts';
import { deriveFlowKeys } from './crypto.ts';
import { isSessionMessage } from './messages.ts';
import { ProtocolError } from './errors.ts';
import { Directory } from './gateway-directory.ts';
import { Handshake, handshakeError } from './gateway-handshake.ts';
import { ReservationPhase } from './gateway-reservations.ts';
import { Sessions, type GatewaySession } from './gateway-session.ts';
import {
  emptyResult,
  endpointString,
  type Endpoint,
  type GatewayConfig,
  type GatewayOptions,
  type GatewayResult,
} from './gateway-types.ts';
import type { ProtoNumber, ReasonName } from './constants.ts';
import { ReservationTable, type Reservation } from './reservation-table.ts';
import { StateChanges, type RowRecord, type SessionRecord, type StateDelta } from './gateway-state.ts';

/** Gateway-side protocol engine. One instance per gateway (all sessions). */
export class GatewayControl {
  readonly controlPort: number;
  /** Every reserved port, one row each: the only place the gateway keeps them. */
  readonly reservations: ReservationTable;
  private readonly directory: Directory;
  private readonly handshake: Handshake;
  private readonly sessions: Sessions;
  private readonly reservationPhase: ReservationPhase;
  private readonly changes = new StateChanges();

  constructor(opts: GatewayOptions) {
    const rnd = opts.randomBytes ?? nodeRandomBytes;
    const cfg: GatewayConfig = {
      controlPort: opts.controlPort ?? DEFAULT_PORT,
      sessionLifetimeSec: opts.sessionLifetimeSec ?? 8 * 3600,
      sessionIdleSec: opts.sessionIdleSec ?? 120,
      keepaliveIntervalSec: opts.keepaliveIntervalSec ?? 25,
      reservationLifetimeSec: opts.reservationLifetimeSec ?? 120,
      mappingLifetimeSec: opts.mappingLifetimeSec ?? 300,
      maxReservationsPerSession: opts.maxReservationsPerSession ?? 256,
      maxSessionsPerUser: opts.maxSessionsPerUser ?? 16,
      responseCacheSize: opts.responseCacheSize ?? 32,
    };
    this.controlPort = cfg.controlPort;
    this.directory = new Directory(opts.policy);
    this.reservations = new ReservationTable(
      { unused: cfg.reservationLifetimeSec * 1000, mapped: cfg.mappingLifetimeSec * 1000 },
      (r, gone) => this.changes.row(r, gone),
    );
    const byId = new Map<string, GatewaySession>();
    this.reservationPhase = new ReservationPhase(this.reservations, this.directory, byId, cfg, this.changes);
    this.sessions = new Sessions(
      byId,
      this.reservationPhase,
      this.directory,
      cfg,
      this.changes,
      opts.resetKey ?? rnd(32),
      rnd,
    );
    this.handshake = new Handshake(
      opts.cookieSecret ?? rnd(32),
      this.directory,
      this.sessions,
      cfg.maxSessionsPerUser,
    );
  }

  /** Counters of held state (a flood of spoofed HELLO/AUTH must leave all of them at 0). */
  stats(): {
    sessions: number;
    reservations: number;
    authCache: number;
    ephemeralKeys: number;
    countedCookies: number;
  } {
    return {
      sessions: this.sessions.byId.size,
      reservations: this.reservations.size,
      authCache: this.handshake.cached,
      ephemeralKeys: this.handshake.ephemeralKeys,
      countedCookies: this.handshake.countedCookies,
    };
  }

  /** Is `addr` the current address of a live session's agent? (its answers are deliverable) */
  isPeer(addr: string): boolean {
    return this.sessions.hasPeerAt(addr);
  }

  /**
   * Handles one datagram received from `from` on local UDP port `localPort` (the control port,
   * or a reserved port t for a BIND probe). Never throws on bad input. A result with `lookup` is
   * an AUTH waiting for the daemon to look its user up.
   */
  handleDatagram(
    data: Buffer,
    from: Endpoint,
    now: number,
    localPort: number = this.controlPort,
  ): GatewayResult {
    const out = emptyResult();
    const drop = (reason: string, detail?: string) =>
      out.events.push({ kind: 'dropped', from: endpointString(from), reason, ...(detail ? { detail } : {}) });
    let version: number;
    try {
      version = peekPrefix(data).version;
    } catch {
      drop('not-gsra');
      return out;
    }
    if (version !== PROTOCOL_VERSION) {
      const reply = handshakeError(
        Buffer.alloc(NONCE_LEN),
        'unsupported-version',
        SUPPORTED_VERSIONS.join(','),
      );
      reply[2] = REFUSAL_VERSION; // the layout every version reads (§3)
      if (reply.length <= data.length) out.send.push({ to: from, data: reply, unproven: true });
      drop('unsupported-version');
      return out;
    }
    let msg;
    try {
      msg = decode(data);
    } catch (e) {
      drop('malformed', e instanceof ProtocolError ? e.code : 'error');
      return out;
    }
    if (localPort !== this.controlPort && msg.type !== 'BIND') drop('not-a-probe');
    else if (msg.type === 'HELLO') this.handshake.hello(msg, from, now, out);
    else if (msg.type === 'AUTH') this.handshake.auth(msg, data, from, now, out);
    else if (msg.type === 'COOKIE' || msg.type === 'HANDSHAKE_ERROR' || msg.type === 'AUTH_OK')
      drop('wrong-direction', msg.type);
    else if (isSessionMessage(msg)) this.sessions.handle(msg, data, from, now, localPort, out);
    return this.directory.flush(out);
  }

  /**
   * The engine verified the first packet of a flow to GGR:t with the flow keys of reservation
   * (proto, t); it came from GHR:m and carried the original destination port d.
   */
  onInbandBinding(
    b: { proto: ProtoNumber; t: number; ghr: string; m: number; d: number },
    now: number,
  ): GatewayResult {
    return this.directory.flush(this.reservationPhase.inband(b, now));
  }

  /** The FTP ALG saw a PASV/EPSV reply on control connection ctrlT (see ReservationPhase.ftpAlias). */
  ftpAlias(a: { ctrlT: number; aliasPort: number }, now: number): GatewayResult & { record?: Reservation } {
    return this.directory.flush(this.reservationPhase.ftpAlias(a, now));
  }

  /**
   * Decides every reservation again (call after the directory changed): the ones the policy now
   * refuses end at once ('reservation-ended', ports back to the pool), each with a 'decision'
   * event naming the reason. Sessions stay up; their next requests are decided anew.
   */
  recheckAll(now: number, keep?: (r: Reservation, reason: ReasonName) => boolean): GatewayResult {
    return this.directory.flush(this.reservationPhase.recheckAll(now, keep));
  }

  /**
   * What changed since the last call (sessions and rows to write, or null: gone). The daemon
   * writes it to its store before it sends the datagrams of the same result: nothing an agent
   * hears about is lost by a crash right after.
   */
  takeChanges(): StateDelta {
    return this.changes.take();
  }

  /**
   * At start, before any datagram: the sessions and rows a store kept. Sessions past their
   * lifetime and rows without their session are dropped; the rest go on with their idle time and
   * lifetimes started again at `now`. Returns the rows put back (for the port pool and the data
   * plane) and how many records were dropped.
   */
  restore(
    state: { sessions: SessionRecord[]; rows: RowRecord[] },
    now: number,
  ): { sessions: number; rows: Reservation[]; dropped: number } {
    let dropped = 0;
    const byId = new Map<string, GatewaySession>();
    for (const rec of state.sessions) {
      const s = this.sessions.restore(rec, now);
      if (s) byId.set(s.idHex, s);
      else dropped++;
    }
    const rows: Reservation[] = [];
    for (const rec of [...state.rows].sort((a, b) => a.id - b.id)) {
      const s = byId.get(rec.sessionId);
      if (!s || this.reservations.has(rec.proto, rec.t)) {
        dropped++;
        continue;
      }
      rows.push(
        this.reservations.restore(
          {
            ...rec,
            user: s.user,
            userDn: s.userDn,
            group: s.group,
            keys: deriveFlowKeys(s.secret, rec.proto, rec.t, rec.serial),
          },
          now,
        ),
      );
    }
    // what was dropped must not come back at the next start either
    for (const rec of state.sessions) if (!byId.has(rec.id)) this.changes.sessionEnded(rec.id);
    for (const rec of state.rows)
      if (!rows.some((r) => r.id === rec.id)) this.changes.row({ id: rec.id } as Reservation, true);
    return { sessions: byId.size, rows, dropped };
  }

  /** The engine ended the flow of row (proto, t) with this id: the row ends, its port goes back. */
  flowEnded(e: { proto: ProtoNumber; t: number; id: number; closedBy?: 'in' | 'en' }): GatewayResult {
    const out = emptyResult();
    this.reservationPhase.flowEnded(e, out);
    return this.directory.flush(out);
  }

  /** Ends row (proto, t) that the data plane cannot carry on; its agent hears why (see ReservationPhase.lose). */
  lose(r: Reservation, why: string, now: number): GatewayResult {
    const out = emptyResult();
    if (this.reservations.get(r.proto, r.t) === r) this.reservationPhase.lose(r, why, now, out);
    return this.directory.flush(out);
  }

  /** Runs retransmissions and expiries due at `now`. Call at nextDeadline() (or periodically). */
  poll(now: number): GatewayResult {
    const out = emptyResult();
    this.handshake.poll(now);
    this.sessions.expire(now, out);
    this.reservationPhase.expire(now, out);
    this.sessions.retransmit(now, out);
    return this.directory.flush(out);
  }

  /** The earliest time poll() has something to do, or null. */
  nextDeadline(): number | null {
    const all = [this.handshake.nextDeadline(), this.sessions.nextDeadline(), this.reservations.nextExpiry()];
    const due = all.filter((x): x is number => x !== null);
    return due.length ? Math.min(...due) : null;
  }
}
