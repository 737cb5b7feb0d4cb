// New connections that wait for a port (their first packet held by the engine) and the refusals
// the agent remembers for a few seconds - the bookkeeping of the agent daemon's held connections
// (daemon.ts does the talking: the gateway, the engine, the log). docs/reliability.md,
// "Connections at a browser's pace".
import type { protocol } from '@gsra/common';
import type { FiveTuple } from './data-plane.ts';

type ProtoNumber = protocol.ProtoNumber;

/**
 * A held connection waits this long for a port before it is failed - unless the gateway answered
 * within the last GATEWAY_BUSY_MS (it is busy, e.g. with a burst of 1 000 connections, not gone):
 * then up to HOLD_CAP_MS, under the engine's own hold limit (30 s, data-plane-engine.ts) and far
 * under an application's connect timeout (Linux: about 2 min).
 */
export const HOLD_LIMIT_MS = 5000;
export const GATEWAY_BUSY_MS = 2000;
export const HOLD_CAP_MS = 25_000;
/** A refusal is remembered this long (the gateway is asked again after it). */
const REFUSAL_MEMORY_MS = 5000;

export interface Waiting {
  key: FiveTuple;
  name: string;
  since: number;
}

export interface Refusal {
  until: number;
  reason: string;
  words: string;
}

export class WaitingConnections {
  private list: Waiting[] = [];
  /** Recent refusals by `${IN}/${proto}`: new connections fail at once for a few seconds. */
  private refused = new Map<string, Refusal>();

  add(key: FiveTuple, name: string, now: number): void {
    this.list.push({ key, name, since: now });
  }
  /** How many connections wait for a port of IN `name` (a RESERVE asks for as many). */
  count(name: string, proto: ProtoNumber): number {
    return this.list.filter((w) => w.name === name && w.key.proto === proto).length;
  }
  usesVin(vin: string): boolean {
    return this.list.some((w) => w.key.dst === vin);
  }
  all(): Waiting[] {
    return [...this.list];
  }

  /** Those of IN `name` that `start` could start leave the list. */
  serve(name: string, start: (w: Waiting) => boolean): void {
    this.list = this.list.filter((w) => w.name !== name || !start(w));
  }

  /** The connections to IN `name` leave the list (to be failed); the refusal is remembered. */
  refuse(name: string, proto: ProtoNumber, reason: string, words: string, now: number): Waiting[] {
    const fail = this.list.filter((w) => w.name === name && w.key.proto === proto);
    this.list = this.list.filter((w) => !fail.includes(w));
    this.remember(name, proto, reason, words, now);
    return fail;
  }
  remember(name: string, proto: ProtoNumber, reason: string, words: string, now: number): void {
    this.refused.set(`${name}/${proto}`, { until: now + REFUSAL_MEMORY_MS, reason, words });
  }
  forget(name: string, proto: ProtoNumber): void {
    this.refused.delete(`${name}/${proto}`);
  }
  /** A refusal of IN `name` still remembered at `now`. */
  refusal(name: string, proto: ProtoNumber, now: number): Refusal | undefined {
    const r = this.refused.get(`${name}/${proto}`);
    return r && r.until > now ? r : undefined;
  }

  /** The connections that waited too long leave the list (to be failed); `heardAt`: per IN. */
  late(now: number, heardAt: (name: string) => number): Waiting[] {
    const isLate = (w: Waiting) =>
      now - w.since > (now - heardAt(w.name) < GATEWAY_BUSY_MS ? HOLD_CAP_MS : HOLD_LIMIT_MS);
    const late = this.list.filter(isLate);
    this.list = this.list.filter((w) => !isLate(w));
    return late;
  }

  /** Everything leaves (the agent stops). */
  clear(): Waiting[] {
    const all = this.list;
    this.list = [];
    return all;
  }
}
