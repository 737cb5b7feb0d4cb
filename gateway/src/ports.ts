// The ports t on the gateway's public address that reservations use. The pool only hands numbers
// out and takes them back: a random free port (a port number tells an observer nothing about the
// next one), with per-user and per-source limits. What a port is for, and for how long, is the
// reservation table's business (common/src/protocol/reservation-table.ts).
//
// A port comes back as soon as its flow ended, but a TCP port may still "cool" toward one
// internal server: the gateway speaks to IN as PGR:t, and a server that closed the connection
// first keeps PGR:t <-> PIN:d in TIME_WAIT (60 s on Linux). A new connection on the same 4-tuple
// meanwhile may be refused or stall, so a cooling port is handed out for any other IN at once,
// and for that IN only when it has cooled (docs/reliability.md, "Connections at a browser's
// pace"). The home router is no reason to wait: a new flow comes from a new source port on EN,
// so its mapping never collides with the old GHR:m <-> GGR:t.

export type PortRefusal = 'no-ports' | 'user-limit' | 'source-limit' | 'cooling';

/** Who a port is handed to: the user, and the public address (GHR) the request came from. */
export interface PortOwner {
  user: string;
  source: string;
}

export class PortPool {
  private free: number[] = [];
  /** where[port - first]: the port's index in `free` (meaningful only while it is free). */
  private readonly where: Int32Array;
  /** taken[port - first]: the port is out of the pool. */
  private readonly taken: Uint8Array;
  private perUser = new Map<string, number>();
  private perSource = new Map<string, number>();
  private used = 0;
  /** TCP ports whose last flow may still hold TIME_WAIT at a server: port -> [(PIN, until)]. */
  private readonly cools = new Map<number, Array<{ pin: string; until: number }>>();

  constructor(
    readonly first: number,
    readonly last: number,
    readonly limits: { perUser: number; perSource: number },
    private random: (n: number) => number = (n) => Math.floor(Math.random() * n),
  ) {
    if (first > last) throw new RangeError(`empty port range ${first}..${last}`);
    this.where = new Int32Array(last - first + 1);
    for (let p = first; p <= last; p++) {
      this.where[p - first] = this.free.length;
      this.free.push(p);
    }
    this.taken = new Uint8Array(last - first + 1);
  }

  get size(): number {
    return this.last - this.first + 1;
  }
  get inUse(): number {
    return this.used;
  }
  isTaken(port: number): boolean {
    return port >= this.first && port <= this.last && this.taken[port - this.first] === 1;
  }

  /**
   * Hands `count` ports to owner, or refuses with a reason (nothing is taken then). With `toward`
   * (the IN's PIN and the time), a port still cooling toward that PIN is not handed out.
   */
  take(owner: PortOwner, count: number, toward?: { pin: string; now: number }): number[] | PortRefusal {
    if ((this.perUser.get(owner.user) ?? 0) + count > this.limits.perUser) return 'user-limit';
    if ((this.perSource.get(owner.source) ?? 0) + count > this.limits.perSource) return 'source-limit';
    if (this.free.length < count) return 'no-ports';
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const idx = this.pick(toward);
      if (idx < 0) {
        for (const p of out) this.putBack(p);
        return 'cooling';
      }
      const port = this.free[idx]!;
      this.removeFree(idx);
      out.push(port);
    }
    this.used += count;
    this.add(this.perUser, owner.user, count);
    this.add(this.perSource, owner.source, count);
    return out;
  }

  /** A random index into `free` whose port is not cooling toward `toward.pin`; -1 if none is. */
  private pick(toward?: { pin: string; now: number }): number {
    if (this.free.length === 0) return -1;
    const ok = (i: number) => !toward || !this.coolingToward(this.free[i]!, toward.pin, toward.now);
    for (let tries = 0; tries < 16; tries++) {
      const i = this.random(this.free.length);
      if (ok(i)) return i;
    }
    // most free ports cool toward this IN: look at each once, from a random place
    const start = this.random(this.free.length);
    for (let k = 0; k < this.free.length; k++) {
      const i = (start + k) % this.free.length;
      if (ok(i)) return i;
    }
    return -1;
  }

  /** Takes free[idx] out of the free list (swap with the last). */
  private removeFree(idx: number): void {
    const port = this.free[idx]!;
    const last = this.free.pop()!;
    if (idx < this.free.length) {
      this.free[idx] = last;
      this.where[last - this.first] = idx;
    }
    this.taken[port - this.first] = 1;
  }

  private putBack(port: number): void {
    this.taken[port - this.first] = 0;
    this.where[port - this.first] = this.free.length;
    this.free.push(port);
  }

  /** Is `port` cooling toward `pin` at `now`? (Forgets what has cooled.) */
  coolingToward(port: number, pin: string, now: number): boolean {
    const list = this.cools.get(port);
    if (!list) return false;
    const live = list.filter((c) => c.until > now);
    if (live.length === 0) this.cools.delete(port);
    else if (live.length !== list.length) this.cools.set(port, live);
    return live.some((c) => c.pin === pin);
  }

  /** Ports cooling toward some IN at `now`. */
  cooling(now: number): number {
    let n = 0;
    for (const [port, list] of this.cools) {
      if (list.some((c) => c.until > now)) n++;
      else this.cools.delete(port);
    }
    return n;
  }

  /**
   * Takes a port back from the owner it was handed to; false if it was not out of the pool.
   * `cool`: the port's TCP flow toward `pin` ended and the server may hold TIME_WAIT until `until`.
   */
  give(owner: PortOwner, port: number, cool?: { pin: string; until: number }): boolean {
    if (!this.isTaken(port)) return false;
    this.putBack(port);
    this.used--;
    this.add(this.perUser, owner.user, -1);
    this.add(this.perSource, owner.source, -1);
    if (cool) this.cools.set(port, [...(this.cools.get(port) ?? []), cool]);
    return true;
  }

  /** Takes one given port for owner (a restart puts back the rows a store kept); false if it is out. */
  claim(owner: PortOwner, port: number): boolean {
    if (port < this.first || port > this.last || this.isTaken(port)) return false;
    this.removeFree(this.where[port - this.first]!);
    this.used++;
    this.add(this.perUser, owner.user, 1);
    this.add(this.perSource, owner.source, 1);
    return true;
  }

  countUser(user: string): number {
    return this.perUser.get(user) ?? 0;
  }

  private add(m: Map<string, number>, k: string, n: number): void {
    const v = (m.get(k) ?? 0) + n;
    if (v > 0) m.set(k, v);
    else m.delete(k);
  }
}
