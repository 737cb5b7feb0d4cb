// The ports t on the gateway's public address that reservations use. The pool only hands numbers
// out and takes them back: a random free port (a port number tells an observer nothing about the
// next one), with per-user and per-source limits. What a port is for, and for how long, is the
// reservation table's business (common/src/protocol/reservation-table.ts).

export type PortRefusal = 'no-ports' | 'user-limit' | 'source-limit';

/** Who a port is handed to: the user, and the public address (GHR) the request came from. */
export interface PortOwner {
  user: string;
  source: string;
}

export class PortPool {
  private free: number[] = [];
  /** taken[port - first]: the port is out of the pool. */
  private readonly taken: Uint8Array;
  private perUser = new Map<string, number>();
  private perSource = new Map<string, number>();
  private used = 0;

  constructor(
    readonly first: number,
    readonly last: number,
    readonly limits: { perUser: number; perSource: number },
    private random: (n: number) => number = (n) => Math.floor(Math.random() * n),
  ) {
    if (first > last) throw new RangeError(`empty port range ${first}..${last}`);
    for (let p = first; p <= last; p++) this.free.push(p);
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

  /** Hands `count` ports to owner, or refuses with a reason (nothing is taken then). */
  take(owner: PortOwner, count: number): number[] | PortRefusal {
    if ((this.perUser.get(owner.user) ?? 0) + count > this.limits.perUser) return 'user-limit';
    if ((this.perSource.get(owner.source) ?? 0) + count > this.limits.perSource) return 'source-limit';
    if (this.free.length < count) return 'no-ports';
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const idx = this.random(this.free.length);
      const port = this.free[idx]!;
      this.free[idx] = this.free[this.free.length - 1]!;
      this.free.pop();
      this.taken[port - this.first] = 1;
      out.push(port);
    }
    this.used += count;
    this.add(this.perUser, owner.user, count);
    this.add(this.perSource, owner.source, count);
    return out;
  }

  /** Takes a port back from the owner it was handed to; false if it was not out of the pool. */
  give(owner: PortOwner, port: number): boolean {
    if (!this.isTaken(port)) return false;
    this.taken[port - this.first] = 0;
    this.free.push(port);
    this.used--;
    this.add(this.perUser, owner.user, -1);
    this.add(this.perSource, owner.source, -1);
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
