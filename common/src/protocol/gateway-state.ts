// What the gateway's control plane keeps across a restart (docs/reliability.md): each session
// (who, its secret, its channel's numbers) and each row of the reservation table (its port, its
// flow-key serial, its binding and mapping). Flow keys and control keys are not kept: they are
// derived again from the session secret (docs/protocol.md §7). Timers are not kept either: a
// restored session and its rows live their idle time and lifetime again from the restart.
//
// GatewayControl reports what changed since it was last asked (takeChanges); the daemon writes
// that to its store before it sends anything that depends on it, and gives the records back to
// GatewayControl.restore() at the next start.

import type { ProtoNumber } from './constants.ts';
import type { ChannelState } from './channel.ts';
import type { Endpoint } from './gateway-types.ts';
import type { GatewaySession } from './gateway-session.ts';
import type { Reservation } from './reservation-table.ts';

export interface SessionRecord {
  id: string;
  user: string;
  userDn: string;
  group: string;
  gkVersion: number;
  /** The session secret, base64 (the store encrypts it at rest). */
  secret: string;
  peer: Endpoint;
  /** The session's absolute end (ms since the epoch). */
  expiresAt: number;
  nextSerial: number;
  channel: ChannelState;
}

export interface RowRecord {
  id: number;
  proto: ProtoNumber;
  t: number;
  serial: number;
  sessionId: string;
  inName: string;
  pin: string;
  vin?: string;
  aliasPort?: number;
  en: Endpoint;
  binding?: { ghr: string; m: number };
  mapping?: { d: number };
}

export const sessionRecord = (s: GatewaySession): SessionRecord => ({
  id: s.idHex,
  user: s.user,
  userDn: s.userDn,
  group: s.group,
  gkVersion: s.gkVersion,
  secret: s.secret.toString('base64'),
  peer: { ...s.peer },
  expiresAt: s.expiresAt,
  nextSerial: s.nextSerial,
  channel: s.channel.save(),
});

export const rowRecord = (r: Reservation): RowRecord => ({
  id: r.id,
  proto: r.proto,
  t: r.t,
  serial: r.serial,
  sessionId: r.sessionId,
  inName: r.inName,
  pin: r.pin,
  ...(r.vin !== undefined ? { vin: r.vin } : {}),
  ...(r.aliasPort !== undefined ? { aliasPort: r.aliasPort } : {}),
  en: { ...r.en },
  ...(r.binding ? { binding: { ...r.binding } } : {}),
  ...(r.mapping ? { mapping: { ...r.mapping } } : {}),
});

/** Changes since the last takeChanges(): a record to write (its current state), or null: gone. */
export interface StateDelta {
  sessions: Map<string, SessionRecord | null>;
  rows: Map<number, RowRecord | null>;
}

/** Collects what changed; records are made when taken, so they hold the latest state. */
export class StateChanges {
  private sessions = new Map<string, GatewaySession | null>();
  private rows = new Map<number, Reservation | null>();

  session(s: GatewaySession): void {
    if (this.sessions.get(s.idHex) !== null) this.sessions.set(s.idHex, s);
  }
  sessionEnded(id: string): void {
    this.sessions.set(id, null);
  }
  row(r: Reservation, gone: boolean): void {
    if (gone) this.rows.set(r.id, null);
    else if (this.rows.get(r.id) !== null) this.rows.set(r.id, r);
  }

  get empty(): boolean {
    return this.sessions.size === 0 && this.rows.size === 0;
  }

  take(): StateDelta {
    const out: StateDelta = { sessions: new Map(), rows: new Map() };
    for (const [id, s] of this.sessions) out.sessions.set(id, s && sessionRecord(s));
    for (const [id, r] of this.rows) out.rows.set(id, r && rowRecord(r));
    this.sessions = new Map();
    this.rows = new Map();
    return out;
  }
}
