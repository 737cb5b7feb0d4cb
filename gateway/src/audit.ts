// The per-flow audit: one record when a flow ends — who (user, group), what (internal host, its
// address and port), from where (the PC's public address GHR:m as the gateway saw it), how much
// (packets, whole-packet bytes and payload bytes, each way), when (start, end, duration) and why it
// ended (docs/gateway.md "Per-flow audit"). The same record, without the reason, describes a live
// flow (`/status`, `gsra-gateway status --flows`, the status page). Records go to the log as one
// JSON line (message "flow ended") and, when configured, to syslog (syslog.ts).
import { protocol, type Logger } from '@gsra/common';
import { Counter, type Registry } from 'prom-client';
import type { FlowCounts } from './data-plane.ts';

const { endpointString, protoName } = protocol;
type Reservation = protocol.Reservation;
type ReservationEndCause = protocol.ReservationEndCause;

/** Why a flow ended, as the audit line says it. */
export const CLOSE_REASONS = [
  'fin',
  'rst',
  'idle',
  'session-down',
  'policy-change',
  'verify-failed',
  'gateway-stop',
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/** How the end of a flow reached the gateway. */
export type FlowEnd =
  /** The engine timed the flow out, in this state (closing, established, udp, handshake). */
  | { by: 'engine'; state: string }
  /** Its row of the reservation table ended. */
  | { by: 'control'; cause: ReservationEndCause }
  /** The gateway is stopping. */
  | { by: 'stop' };

/**
 * The close reason. What the connection itself said comes first: a FIN or RST the engine saw
 * means the applications closed it, whatever cleaned the row up afterwards. Then what the
 * control plane did (the session ended, the directory now refuses the flow, the gateway stops).
 * Then verification failures, when the flow's latest packet from the internet failed to verify
 * (a NAT that changed its mind, an attacker, a broken path). Anything else went quiet: idle (the
 * engine's or the agent's idle timeout, or the row's lifetime without KEEPALIVE).
 */
export function closeReason(end: FlowEnd, close: FlowCounts['close'] | undefined): CloseReason {
  if (close === 'fin' || close === 'rst') return close;
  if (end.by === 'stop') return 'gateway-stop';
  if (end.by === 'control' && end.cause === 'session') return 'session-down';
  if (end.by === 'control' && end.cause === 'policy') return 'policy-change';
  if (close === 'verify-failed') return 'verify-failed';
  return 'idle';
}

/** One flow as the audit and the status report it. */
export interface FlowRecord {
  user: string;
  group: string;
  /** The internal host: its name, its LAN address (PIN) and the service port d. */
  in: string;
  pin: string;
  d: number | null;
  proto: 'tcp' | 'udp' | 'other';
  /** The reserved port on GGR. */
  t: number;
  /** The PC's public address for this flow (GHR:m, from its first packet). */
  ghr: string | null;
  /** The agent's control address when the port was reserved (public address:port). */
  en: string;
  /** ISO 8601, when the flow's first packet bound it. */
  start: string;
  durationMs: number;
  /** EN → IN (verified, decrypted) and IN → EN (protected): packets, whole-packet bytes, payload bytes. */
  packetsToIn: number;
  bytesToIn: number;
  payloadToIn: number;
  packetsToEn: number;
  bytesToEn: number;
  payloadToEn: number;
  /** Packets on this flow's port that failed verification (dropped). */
  verifyFailed: number;
}

export interface AuditRecord extends FlowRecord {
  /** ISO 8601, when the gateway ended the flow. */
  end: string;
  reason: CloseReason;
}

export interface LiveFlowRecord extends FlowRecord {
  /** The engine's state of the flow (handshake, established, closing, udp, ...). */
  state: string;
  /** How its traffic ended so far, if it did (fin, rst, verify-failed) — not yet a close reason. */
  close: FlowCounts['close'];
}

const ZERO = { packets: 0, bytes: 0, payload: 0 };

/** A flow's record from its row, what the engine counted, and when it started. */
export function flowRecord(
  row: Reservation,
  counts: FlowCounts | undefined,
  startedAt: number,
  now: number,
): FlowRecord {
  const toIn = counts?.toIn ?? ZERO;
  const toEn = counts?.toEn ?? ZERO;
  return {
    user: row.user,
    group: row.group,
    in: row.inName,
    pin: row.pin,
    d: row.mapping?.d ?? null,
    proto: protoName(row.proto) as FlowRecord['proto'],
    t: row.t,
    ghr: row.binding ? `${row.binding.ghr}:${row.binding.m}` : null,
    en: endpointString(row.en),
    start: new Date(startedAt).toISOString(),
    durationMs: Math.max(0, now - startedAt),
    packetsToIn: toIn.packets,
    bytesToIn: toIn.bytes,
    payloadToIn: toIn.payload,
    packetsToEn: toEn.packets,
    bytesToEn: toEn.bytes,
    payloadToEn: toEn.payload,
    verifyFailed: counts?.verifyFailed ?? 0,
  };
}

export function auditRecord(
  row: Reservation,
  counts: FlowCounts | undefined,
  startedAt: number,
  now: number,
  end: FlowEnd,
): AuditRecord {
  return {
    ...flowRecord(row, counts, startedAt, now),
    end: new Date(now).toISOString(),
    reason: closeReason(end, counts?.close),
  };
}

export interface FlowAuditOptions {
  logger: Logger;
  registry: Registry;
  /** Where else each record goes, as one JSON text (syslog). */
  also?: (json: string) => void;
}

/**
 * Keeps when each live flow started, and writes one audit record per flow when it ends: when the
 * engine times it out, or its row ends, whichever comes first (once per row).
 */
export class FlowAudit {
  /** Row id → when its flow started (ms). */
  private readonly started = new Map<number, number>();
  /** Rows whose flow the engine ended before the row itself ended (already audited). */
  private readonly done = new Set<number>();
  private readonly ended: Counter<'reason'>;
  private readonly payload: Counter<'direction'>;

  constructor(private readonly o: FlowAuditOptions) {
    this.ended = new Counter({
      name: 'gsra_gateway_flows_ended_total',
      help: 'Flows that ended, by close reason (one audit record each)',
      labelNames: ['reason'],
      registers: [o.registry],
    });
    this.payload = new Counter({
      name: 'gsra_gateway_flow_payload_bytes_total',
      help: 'Payload bytes of ended flows, by direction (to-in: from the PCs, to-en: to the PCs)',
      labelNames: ['direction'],
      registers: [o.registry],
    });
  }

  /** The row's flow started (its first packet bound it). */
  mapped(row: Reservation, now: number): void {
    if (!this.started.has(row.id)) this.started.set(row.id, now);
  }

  startedAt(row: Reservation): number | undefined {
    return this.started.get(row.id);
  }

  /** The engine ended the row's flow itself; the row may live on until RELEASE or its lifetime. */
  engineEnded(row: Reservation, counts: FlowCounts | undefined, state: string, now: number): void {
    if (this.done.has(row.id)) return;
    this.write(row, counts, now, { by: 'engine', state });
    this.done.add(row.id);
  }

  /** The row ended (counts: the engine's, read before it forgets the flow). */
  rowEnded(row: Reservation, counts: FlowCounts | undefined, cause: ReservationEndCause, now: number): void {
    if (row.mapping && !this.done.has(row.id)) this.write(row, counts, now, { by: 'control', cause });
    this.started.delete(row.id);
    this.done.delete(row.id);
  }

  /** The gateway stops: every flow still running ends here. */
  stop(
    rows: Iterable<Reservation>,
    countsOf: (row: Reservation) => FlowCounts | undefined,
    now: number,
  ): void {
    for (const row of rows) {
      if (row.mapping && !this.done.has(row.id)) this.write(row, countsOf(row), now, { by: 'stop' });
    }
    this.started.clear();
    this.done.clear();
  }

  /** Live flows (mapped rows whose flow the engine still has), as the status shows them. */
  live(
    rows: Iterable<Reservation>,
    countsOf: (row: Reservation) => FlowCounts | undefined,
    now: number,
  ): LiveFlowRecord[] {
    const out: LiveFlowRecord[] = [];
    for (const row of rows) {
      if (!row.mapping || this.done.has(row.id)) continue;
      const counts = countsOf(row);
      out.push({
        ...flowRecord(row, counts, this.started.get(row.id) ?? now, now),
        state: counts?.state ?? 'mapped',
        close: counts?.close ?? 'none',
      });
    }
    return out;
  }

  private write(row: Reservation, counts: FlowCounts | undefined, now: number, end: FlowEnd): void {
    const rec = auditRecord(row, counts, this.started.get(row.id) ?? now, now, end);
    this.ended.inc({ reason: rec.reason });
    this.payload.inc({ direction: 'to-in' }, rec.payloadToIn);
    this.payload.inc({ direction: 'to-en' }, rec.payloadToEn);
    this.o.logger.info('flow ended', { ...rec });
    this.o.also?.(JSON.stringify({ message: 'flow ended', ...rec }));
  }
}
