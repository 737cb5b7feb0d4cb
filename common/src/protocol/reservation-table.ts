// The gateway's reservations, in one table keyed by (proto, t). A row is created when the gateway
// reserves port t for a session (RESERVE, FTP_ALIAS) and holds everything about that port: whose
// it is, its flow keys, the internal host it leads to, its one lifetime, and its binding and
// mapping once the flow's first packet arrived. It is removed when it is released, expires, is
// refused on a directory change, or its session ends; nothing else on the gateway keeps a copy:
// the daemon, the FTP ALG and the data plane read the row (the data plane gets the row itself,
// and knows it by `id`), and the port pool only hands out and takes back numbers.

import type { ProtoNumber } from './constants.ts';
import type { FlowKeys } from './crypto.ts';
import { Deadlines } from './deadlines.ts';
import type { Endpoint } from './gateway-types.ts';

export interface Reservation {
  /** Unique for the gateway's run: how the data plane knows this row (the engine's flow id). */
  readonly id: number;
  readonly proto: ProtoNumber;
  /** The reserved port on GGR. */
  readonly t: number;
  /** Per-session flow-key serial (docs/protocol.md §7). */
  readonly serial: number;
  readonly keys: FlowKeys;
  /** The owning session, and who that is (every log line and audit record names them). */
  readonly sessionId: string;
  readonly user: string;
  readonly userDn: string;
  readonly group: string;
  /** The IN the port leads to, and its address on the LAN (PIN), from the directory. */
  readonly inName: string;
  readonly pin: string;
  /**
   * The agent's VIN for inName as sent in RESERVE (an FTP data reservation inherits its control
   * reservation's); the FTP ALG writes it into PASV replies. Absent when the agent sent 0.0.0.0.
   */
  readonly vin?: string;
  /** For an FTP data reservation: the IN's data port announced by PASV/EPSV (the only d allowed). */
  readonly aliasPort?: number;
  /** The agent's control address when the port was reserved. */
  readonly en: Endpoint;
  /**
   * The one lifetime: when the gateway ends this row unless KEEPALIVE renews it (ms). Only the
   * table changes it (it keeps the rows ordered by it).
   */
  readonly expiresAt: number;
  /** GHR:m, once the flow's first packet (or an explicit BIND) showed it. */
  binding?: { ghr: string; m: number };
  /** The IN's service port d, once the translation is installed. */
  mapping?: { d: number };
}

/** What the caller says about a new row; the table gives it its id and lifetime. */
export type NewReservation = Omit<Reservation, 'id' | 'expiresAt'>;

/** A row's key: (proto, t) as one number (a Map is faster on small integers than on strings). */
const key = (proto: number, t: number) => proto * 65536 + t;
const name = (proto: number, t: number) => `${proto}/${t}`;

export class ReservationTable {
  private readonly rows = new Map<number, Reservation>();
  /** The same rows by session (an index of this table, for KEEPALIVE and the end of a session). */
  private readonly bySession = new Map<string, Set<Reservation>>();
  /** The rows by expiresAt: the next expiry and the due rows without a walk of the table. */
  private readonly expiries = new Deadlines<Reservation>();
  /** How many rows have a mapping (the flows gauge), kept as rows change. */
  private mappedRows = 0;
  private nextId = 1;

  constructor(
    /** Lifetime of a row with no mapping yet, and of a mapped one (renewed by KEEPALIVE). */
    private readonly lifetimeMs: { unused: number; mapped: number },
    /**
     * Told of every change a store must keep: a row made, bound or mapped (gone = false), or
     * ended (gone = true). A renewal is not one: a restored row lives its lifetime again.
     */
    private readonly onChange: (r: Reservation, gone: boolean) => void = () => {},
  ) {}

  get size(): number {
    return this.rows.size;
  }
  /** Rows with a mapping: flows whose first packet (or MAP) arrived. */
  get mapped(): number {
    return this.mappedRows;
  }
  get(proto: ProtoNumber, t: number): Reservation | undefined {
    return this.rows.get(key(proto, t));
  }
  has(proto: ProtoNumber, t: number): boolean {
    return this.rows.has(key(proto, t));
  }
  values(): IterableIterator<Reservation> {
    return this.rows.values();
  }
  ofSession(sessionId: string): Reservation[] {
    return [...(this.bySession.get(sessionId) ?? [])];
  }
  countOf(sessionId: string): number {
    return this.bySession.get(sessionId)?.size ?? 0;
  }

  /** Adds a row for a port no row holds; it lives the unused lifetime from `now`. */
  add(r: NewReservation, now: number): Reservation {
    if (this.has(r.proto, r.t)) throw new Error(`reservation ${name(r.proto, r.t)} exists`);
    const row: Reservation = { ...r, id: this.nextId++, expiresAt: now + this.lifetimeMs.unused };
    this.insert(row);
    this.onChange(row, false);
    return row;
  }

  private insert(row: Reservation): void {
    this.rows.set(key(row.proto, row.t), row);
    this.expiries.set(row, row.expiresAt);
    if (row.mapping) this.mappedRows++;
    let set = this.bySession.get(row.sessionId);
    if (!set) this.bySession.set(row.sessionId, (set = new Set()));
    set.add(row);
  }

  /**
   * Puts back a row a store kept (a restart): same id, and its lifetime from `now` (nobody could
   * renew it while the gateway was down). Later rows get higher ids.
   */
  restore(r: Omit<Reservation, 'expiresAt'>, now: number): Reservation {
    if (this.has(r.proto, r.t)) throw new Error(`reservation ${name(r.proto, r.t)} exists`);
    const row: Reservation = {
      ...r,
      expiresAt: now + (r.mapping ? this.lifetimeMs.mapped : this.lifetimeMs.unused),
    };
    this.insert(row);
    this.nextId = Math.max(this.nextId, row.id + 1);
    return row;
  }

  /** The flow's first packet arrived (or MAP): binding and/or mapping, and the mapped lifetime. */
  map(r: Reservation, d: number, now: number, binding?: { ghr: string; m: number }): void {
    if (binding) r.binding = binding;
    if (!r.mapping && this.rows.get(key(r.proto, r.t)) === r) this.mappedRows++;
    r.mapping = { d };
    this.expire(r, now + this.lifetimeMs.mapped);
    this.onChange(r, false);
  }

  /** An explicit BIND probe showed GHR:m (docs/protocol.md §8.2). */
  bind(r: Reservation, binding: { ghr: string; m: number }): void {
    r.binding = binding;
    this.onChange(r, false);
  }

  /** KEEPALIVE: every row of the session lives its lifetime again from `now`. */
  renew(sessionId: string, now: number): void {
    for (const r of this.bySession.get(sessionId) ?? [])
      this.expire(r, now + (r.mapping ? this.lifetimeMs.mapped : this.lifetimeMs.unused));
  }
  private expire(r: Reservation, at: number): void {
    (r as { expiresAt: number }).expiresAt = at;
    if (this.rows.get(key(r.proto, r.t)) === r) this.expiries.set(r, at);
  }

  delete(r: Reservation): boolean {
    if (this.rows.get(key(r.proto, r.t)) !== r) return false;
    this.rows.delete(key(r.proto, r.t));
    this.expiries.delete(r);
    if (r.mapping) this.mappedRows--;
    const set = this.bySession.get(r.sessionId);
    set?.delete(r);
    if (set?.size === 0) this.bySession.delete(r.sessionId);
    this.onChange(r, true);
    return true;
  }

  /** Rows whose lifetime is over at `now`, in the order they were added. */
  due(now: number): Reservation[] {
    return this.expiries.due(now);
  }
  /** When the next row's lifetime ends, or null. */
  nextExpiry(): number | null {
    return this.expiries.next();
  }
}
