// The agent's pools of pre-reserved ports (docs/protocol.md §9): per (IN, proto), the ports the
// gateway reserved ahead of time so that a new flow takes one with zero round trips. Also which
// pools have a RESERVE in flight, and which pools the agent wants refilled once a session is up.

import type { ProtoNumber } from './constants.ts';
import type { FlowKeys } from './crypto.ts';

/** A port the gateway reserved for this agent, as the agent holds it until a flow takes it. */
export interface PooledPort {
  inName: string;
  proto: ProtoNumber;
  t: number;
  serial: number;
  keys: FlowKeys;
  expiresAt: number;
}

/** A port is handed to a flow only if it stays valid at least this long (a retransmission cycle). */
export const POOL_MARGIN_MS = 4000;
const MARGIN_MS = POOL_MARGIN_MS;

const poolKey = (inName: string, proto: ProtoNumber) => `${inName}/${proto}`;

export class PortPools {
  /** `onChange`: a port was taken, added, dropped or forgotten (a store writes the pools again). */
  constructor(private readonly onChange: () => void = () => {}) {}

  private readonly pools = new Map<string, PooledPort[]>();
  /** Ports asked for by RESERVEs in flight, per pool. */
  private readonly reserving = new Map<string, number>();
  /** Pools to fill once the session is up (asked for before it was, or held by a lost session). */
  private readonly wanted = new Map<string, { inName: string; proto: ProtoNumber }>();

  size(inName: string, proto: ProtoNumber, now?: number): number {
    if (now !== undefined) this.expire(inName, proto, now);
    return this.pools.get(poolKey(inName, proto))?.length ?? 0;
  }
  private expire(inName: string, proto: ProtoNumber, now: number): void {
    const key = poolKey(inName, proto);
    const pool = this.pools.get(key);
    if (pool)
      this.pools.set(
        key,
        pool.filter((p) => p.expiresAt - MARGIN_MS > now),
      );
  }

  /** Takes the oldest valid port of the pool, or null. */
  take(inName: string, proto: ProtoNumber, now: number): PooledPort | null {
    this.expire(inName, proto, now);
    const p = this.pools.get(poolKey(inName, proto))?.shift() ?? null;
    if (p) this.onChange();
    return p;
  }
  /** Takes port (proto, t) out of whichever pool holds it (the engine took it for a flow), or null. */
  takeExact(proto: ProtoNumber, t: number): PooledPort | null {
    for (const pool of this.pools.values()) {
      const i = pool.findIndex((p) => p.proto === proto && p.t === t);
      if (i < 0) continue;
      const [p] = pool.splice(i, 1);
      this.onChange();
      return p!;
    }
    return null;
  }
  add(ports: PooledPort[]): void {
    for (const p of ports) {
      const key = poolKey(p.inName, p.proto);
      this.pools.set(key, [...(this.pools.get(key) ?? []), p]);
    }
    this.onChange();
  }
  /** Every pooled port (for a store). */
  all(): PooledPort[] {
    return [...this.pools.values()].flat();
  }
  /** Forgets port (proto, t) wherever it is pooled (released by the agent). */
  drop(proto: ProtoNumber, t: number): void {
    for (const [k, pool] of this.pools)
      this.pools.set(
        k,
        pool.filter((p) => !(p.proto === proto && p.t === t)),
      );
    this.onChange();
  }
  /** The gateway refused the session's ports on its own (a directory change): none is usable. */
  clear(): void {
    this.pools.clear();
    this.onChange();
  }
  /** KEEPALIVE_ACK: the gateway renewed every reservation of the session. */
  renew(expiresAt: number): void {
    for (const pool of this.pools.values()) for (const p of pool) p.expiresAt = expiresAt;
  }

  /** Ports asked for and not answered yet (RESERVEs in flight) for this pool. */
  reservingCount(inName: string, proto: ProtoNumber): number {
    return this.reserving.get(poolKey(inName, proto)) ?? 0;
  }
  /** A RESERVE for `count` ports left (count > 0), or its answer came (count < 0). */
  addReserving(inName: string, proto: ProtoNumber, count: number): void {
    const key = poolKey(inName, proto);
    const n = (this.reserving.get(key) ?? 0) + count;
    if (n > 0) this.reserving.set(key, n);
    else this.reserving.delete(key);
  }

  want(inName: string, proto: ProtoNumber): void {
    this.wanted.set(poolKey(inName, proto), { inName, proto });
  }
  /** The pools wanted, forgotten as they are returned (the caller asks for them now). */
  takeWanted(): Array<{ inName: string; proto: ProtoNumber }> {
    const w = [...this.wanted.values()];
    this.wanted.clear();
    return w;
  }

  /**
   * The session ended: every pool is gone. The ones that existed (or were being filled) are
   * remembered as wanted, so the next session refills them right away - unless `forget` (logout).
   */
  reset(forget: boolean): void {
    if (forget) this.wanted.clear();
    else {
      for (const key of this.pools.keys()) this.wantKey(key);
      for (const key of this.reserving.keys()) this.wantKey(key);
    }
    this.pools.clear();
    this.reserving.clear();
    this.onChange();
  }
  private wantKey(key: string): void {
    const i = key.lastIndexOf('/');
    this.want(key.slice(0, i), Number(key.slice(i + 1)) as ProtoNumber);
  }
}
