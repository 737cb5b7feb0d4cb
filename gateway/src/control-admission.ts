// What the gateway lets into its control plane, and in what order it answers (docs/security.md,
// "Control plane"). Unauthenticated datagrams are cheap but not free, and their answers may be
// undeliverable (a spoofed source on the gateway's own segment makes the kernel queue them while
// it looks for a neighbour that does not exist):
// - HELLO and AUTH are limited per source address (token buckets, bounded memory);
// - an answer to an unproven source (COOKIE, refusals before the cookie check, unknown-session)
//   goes first to addresses that have shown they receive what the gateway sends (a valid cookie
//   came back from there, or a live session's agent is there): those go with session traffic;
//   the rest share a global budget and are shed, never queued, once it is spent or the socket
//   that carries them is congested.
// Pure: the caller passes the time; sockets are control-sockets.ts.

/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
class Bucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface Rate {
  /** Per second. */
  rate: number;
  burst: number;
}

/** One token bucket per key, at most `max` of them: the least recently used one is forgotten. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, Bucket>();
  constructor(
    private readonly r: Rate,
    private readonly max: number,
  ) {}
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b)
      this.buckets.delete(key); // re-inserted below: Map order is the LRU order
    else {
      // Memory stays bounded: the least recently seen source is forgotten (it starts again
      // with a full burst, which a flood of many sources gains nothing from: the global budget
      // still holds for their answers).
      if (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
      b = new Bucket(this.r.rate, this.r.burst, now);
    }
    this.buckets.set(key, b);
    return b.take(now);
  }
  get size(): number {
    return this.buckets.size;
  }
}

/** Addresses known to receive what the gateway sends, each for `ttlMs` after it last showed it. */
export class ProvenSources {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}
  add(addr: string, now: number): void {
    this.seen.delete(addr);
    if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(addr, now);
  }
  has(addr: string, now: number): boolean {
    const at = this.seen.get(addr);
    if (at === undefined) return false;
    if (now - at > this.ttlMs) {
      this.seen.delete(addr);
      return false;
    }
    return true;
  }
  get size(): number {
    return this.seen.size;
  }
}

export interface AdmissionOptions {
  /** HELLOs per source address (default 20/s, burst 40: an office NAT's agents starting at once). */
  hello?: Rate;
  /** AUTHs per source address (default 20/s, burst 40). */
  auth?: Rate;
  /** Answers to unproven sources, all sources together (default 200/s, burst 400). */
  unproven?: Rate;
  /** Sources remembered per limiter (default 16 384). */
  maxSources?: number;
  /** How long a proven address stays proven (default 15 min). */
  provenTtlMs?: number;
}

export type Verdict = 'ok' | 'rate-limited';
export type Path = 'priority' | 'bulk' | 'shed';

export const HELLO_TYPE = 0x01;
export const AUTH_TYPE = 0x03;

export class ControlAdmission {
  private readonly hello: KeyedLimiter;
  private readonly auth: KeyedLimiter;
  private readonly budget: Bucket;
  readonly proven: ProvenSources;

  constructor(o: AdmissionOptions = {}, now = Date.now()) {
    const max = o.maxSources ?? 16_384;
    this.hello = new KeyedLimiter(o.hello ?? { rate: 20, burst: 40 }, max);
    this.auth = new KeyedLimiter(o.auth ?? { rate: 20, burst: 40 }, max);
    const u = o.unproven ?? { rate: 200, burst: 400 };
    this.budget = new Bucket(u.rate, u.burst, now);
    this.proven = new ProvenSources(o.provenTtlMs ?? 15 * 60_000, max);
  }

  /** May this datagram be handled? Only HELLO and AUTH are limited (by the type byte; nothing else is read). */
  admit(data: Buffer, addr: string, now: number): Verdict {
    if (data.length < 4 || data[0] !== 0x47 || data[1] !== 0x53) return 'ok';
    if (data[3] === HELLO_TYPE) return this.hello.take(addr, now) ? 'ok' : 'rate-limited';
    if (data[3] === AUTH_TYPE) return this.auth.take(addr, now) ? 'ok' : 'rate-limited';
    return 'ok';
  }

  /**
   * How to send one answer: session traffic and answers to proven addresses (`isPeer`: a live
   * session's agent is there) with priority; other answers to unproven sources from the budget
   * (then on the bulk socket, which sheds them when congested); none left: shed.
   */
  path(o: { to: { addr: string }; unproven?: true }, now: number, isPeer: (addr: string) => boolean): Path {
    if (!o.unproven) return 'priority';
    if (this.proven.has(o.to.addr, now) || isPeer(o.to.addr)) return 'priority';
    return this.budget.take(now) ? 'bulk' : 'shed';
  }

  /** Memory held, for the status page and the flood tests. */
  stats(): { helloSources: number; authSources: number; proven: number } {
    return { helloSources: this.hello.size, authSources: this.auth.size, proven: this.proven.size };
  }
}
