// A bounded map: at most `max` entries, each forgotten `ttlMs` after it was last written, the
// least recently used one evicted first. Whatever arrives, it never holds more than `max`.
export class LruTtl<K, V> {
  private readonly m = new Map<K, { v: V; exp: number }>();

  constructor(
    readonly max: number,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(max >= 1)) throw new RangeError(`LruTtl max must be >= 1, got ${max}`);
  }

  get size(): number {
    return this.m.size;
  }

  /** The live value for k (and k becomes the most recently used), or undefined. */
  get(k: K): V | undefined {
    const e = this.m.get(k);
    if (!e) return undefined;
    this.m.delete(k);
    if (e.exp <= this.now()) return undefined;
    this.m.set(k, e);
    return e.v;
  }

  set(k: K, v: V): void {
    this.m.delete(k);
    this.m.set(k, { v, exp: this.now() + this.ttlMs });
    while (this.m.size > this.max) this.m.delete(this.m.keys().next().value as K);
  }

  clear(): void {
    this.m.clear();
  }
}
