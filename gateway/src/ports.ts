// Port reservation on the gateway's public address: the ports t that flows use on GGR.
// O(1) reserve/release, random choice (a port number tells an observer nothing about the next
// one), per-user and per-source limits, and a TTL for reservations that no flow has used yet.

export interface Reservation {
  port: number;
  user: string;
  /** The EN's public address as the gateway saw it when reserving (GHR). */
  source: string;
  /** Expiry (ms since epoch); Infinity while a flow is bound to the port. */
  expires: number;
  /** Set once a flow is bound to the port. */
  bound: boolean;
}

export type ReserveRefusal = 'no-ports' | 'user-limit' | 'source-limit';

export class PortPool {
  private free: number[] = [];
  private used = new Map<number, Reservation>();
  private perUser = new Map<string, number>();
  private perSource = new Map<string, number>();

  constructor(
    readonly first: number,
    readonly last: number,
    readonly limits: { perUser: number; perSource: number; ttlMs: number },
    private random: (n: number) => number = (n) => Math.floor(Math.random() * n),
  ) {
    if (first > last) throw new RangeError(`empty port range ${first}..${last}`);
    for (let p = first; p <= last; p++) this.free.push(p);
  }

  get size(): number {
    return this.last - this.first + 1;
  }
  get inUse(): number {
    return this.used.size;
  }

  get(port: number): Reservation | undefined {
    return this.used.get(port);
  }

  /** Reserve `count` ports for user at source, or refuse with a reason (nothing reserved then). */
  reserve(user: string, source: string, count: number, now: number): Reservation[] | ReserveRefusal {
    if ((this.perUser.get(user) ?? 0) + count > this.limits.perUser) return 'user-limit';
    if ((this.perSource.get(source) ?? 0) + count > this.limits.perSource) return 'source-limit';
    if (this.free.length < count) {
      this.expire(now);
      if (this.free.length < count) return 'no-ports';
    }
    const out: Reservation[] = [];
    for (let i = 0; i < count; i++) {
      const idx = this.random(this.free.length);
      const port = this.free[idx]!;
      this.free[idx] = this.free[this.free.length - 1]!;
      this.free.pop();
      const r: Reservation = { port, user, source, expires: now + this.limits.ttlMs, bound: false };
      this.used.set(port, r);
      out.push(r);
    }
    this.perUser.set(user, (this.perUser.get(user) ?? 0) + count);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + count);
    return out;
  }

  /** Mark a port as carrying a flow: it no longer expires by TTL (the flow's own timeout rules). */
  bind(port: number): boolean {
    const r = this.used.get(port);
    if (!r) return false;
    r.bound = true;
    r.expires = Infinity;
    return true;
  }

  /** Extend an unbound reservation's life. */
  renew(port: number, now: number): boolean {
    const r = this.used.get(port);
    if (!r) return false;
    if (!r.bound) r.expires = now + this.limits.ttlMs;
    return true;
  }

  release(port: number): Reservation | undefined {
    const r = this.used.get(port);
    if (!r) return undefined;
    this.used.delete(port);
    this.free.push(port);
    const dec = (m: Map<string, number>, k: string) => {
      const v = (m.get(k) ?? 1) - 1;
      if (v > 0) m.set(k, v);
      else m.delete(k);
    };
    dec(this.perUser, r.user);
    dec(this.perSource, r.source);
    return r;
  }

  /** Release every unbound reservation past its expiry; returns what expired. */
  expire(now: number): Reservation[] {
    const gone: Reservation[] = [];
    for (const r of this.used.values()) if (!r.bound && r.expires <= now) gone.push(r);
    for (const r of gone) this.release(r.port);
    return gone;
  }

  /** Every reservation of a user (e.g. to end them when the user is revoked). */
  ofUser(user: string): Reservation[] {
    return [...this.used.values()].filter((r) => r.user === user);
  }

  countUser(user: string): number {
    return this.perUser.get(user) ?? 0;
  }
}
