// Deadlines: when each of many things (a session, a reservation, a cached AUTH_OK) next needs the
// clock, as a binary min-heap with one entry per key. Setting, moving and removing a key cost
// O(log n), the earliest time O(1), so the gateway re-arms its one timer after every datagram
// without walking every session and reservation (docs/performance.md, lever 2).
//
// due() lists what is due in the order the keys were first set (a key that moves keeps its place),
// so expiries are reported in the order things were created, as a walk of the tables did; among
// equal times the earliest-created key is also the heap's first.

interface Entry<K> {
  readonly key: K;
  at: number;
  /** Order of first insertion: the tie-breaker between equal times. */
  readonly seq: number;
  /** Position in the heap array. */
  pos: number;
}

export class Deadlines<K> {
  private readonly heap: Entry<K>[] = [];
  private readonly byKey = new Map<K, Entry<K>>();
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }
  has(key: K): boolean {
    return this.byKey.has(key);
  }
  /** The time set for `key`, if any. */
  at(key: K): number | undefined {
    return this.byKey.get(key)?.at;
  }
  /** The earliest time set, or null when empty. */
  next(): number | null {
    return this.heap.length ? this.heap[0]!.at : null;
  }

  /** Sets (or moves) the time of `key`; `null` removes it. */
  set(key: K, at: number | null): void {
    if (at === null) {
      this.delete(key);
      return;
    }
    const e = this.byKey.get(key);
    if (!e) {
      const n: Entry<K> = { key, at, seq: this.seq++, pos: this.heap.length };
      this.heap.push(n);
      this.byKey.set(key, n);
      this.up(n.pos);
    } else if (at !== e.at) {
      const earlier = at < e.at;
      e.at = at;
      if (earlier) this.up(e.pos);
      else this.down(e.pos);
    }
  }

  delete(key: K): boolean {
    const e = this.byKey.get(key);
    if (!e) return false;
    this.byKey.delete(key);
    const last = this.heap.pop()!;
    if (last !== e) {
      this.heap[e.pos] = last;
      last.pos = e.pos;
      this.up(last.pos);
      this.down(last.pos);
    }
    return true;
  }

  /** Every key whose time is at or before `now`, in the order first set (nothing is removed). */
  due(now: number): K[] {
    const found: Entry<K>[] = [];
    const stack = this.heap.length && this.heap[0]!.at <= now ? [0] : [];
    while (stack.length) {
      const i = stack.pop()!;
      found.push(this.heap[i]!);
      for (const c of [2 * i + 1, 2 * i + 2])
        if (c < this.heap.length && this.heap[c]!.at <= now) stack.push(c);
    }
    return found.sort((a, b) => a.seq - b.seq).map((e) => e.key);
  }

  clear(): void {
    this.heap.length = 0;
    this.byKey.clear();
  }

  private less(a: Entry<K>, b: Entry<K>): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    a.pos = j;
    b.pos = i;
  }
  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(this.heap[i]!, this.heap[p]!)) return;
      this.swap(i, p);
      i = p;
    }
  }
  private down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.heap.length && this.less(this.heap[l]!, this.heap[m]!)) m = l;
      if (r < this.heap.length && this.less(this.heap[r]!, this.heap[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
