// Retransmission bookkeeping shared by both sides: a request is sent, then resent unchanged after
// 250 ms, 500 ms, 1 s (4 transmissions in all); 2 s after the last one it has timed out.

import { RETRANSMIT_INITIAL_MS, RETRANSMIT_MAX_TRIES } from './constants.ts';

export interface Pending<T> {
  data: Buffer;
  tries: number;
  timeoutMs: number;
  nextAt: number;
  info: T;
}

export class Retransmitter<K, T> {
  private readonly items = new Map<K, Pending<T>>();

  add(key: K, data: Buffer, info: T, now: number): void {
    this.items.set(key, {
      data,
      tries: 1,
      timeoutMs: RETRANSMIT_INITIAL_MS,
      nextAt: now + RETRANSMIT_INITIAL_MS,
      info,
    });
  }
  /** Removes and returns the pending item (the answer arrived). */
  take(key: K): Pending<T> | undefined {
    const p = this.items.get(key);
    this.items.delete(key);
    return p;
  }
  has(key: K): boolean {
    return this.items.has(key);
  }
  get(key: K): Pending<T> | undefined {
    return this.items.get(key);
  }
  /** Due retransmissions (already re-armed) and items that timed out (removed). */
  poll(now: number): {
    resend: Array<{ key: K; item: Pending<T> }>;
    expired: Array<{ key: K; item: Pending<T> }>;
  } {
    const resend: Array<{ key: K; item: Pending<T> }> = [];
    const expired: Array<{ key: K; item: Pending<T> }> = [];
    for (const [key, item] of this.items) {
      if (now < item.nextAt) continue;
      if (item.tries >= RETRANSMIT_MAX_TRIES) {
        this.items.delete(key);
        expired.push({ key, item });
      } else {
        item.tries++;
        item.timeoutMs *= 2;
        item.nextAt = now + item.timeoutMs;
        resend.push({ key, item });
      }
    }
    return { resend, expired };
  }
  nextDeadline(): number | null {
    let d: number | null = null;
    for (const item of this.items.values()) if (d === null || item.nextAt < d) d = item.nextAt;
    return d;
  }
  clear(): void {
    this.items.clear();
  }
  get size(): number {
    return this.items.size;
  }
  keys(): K[] {
    return [...this.items.keys()];
  }
}
