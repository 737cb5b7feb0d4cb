// How the gateway daemon reacts to events: those GatewayControl reports (a log line each, counters,
// the rows handed to or taken from the packet engine, audit records, the FTP_ALIAS acknowledgements
// a rewritten PASV reply waits for) and those the packet engine reports (in-band bindings, failed
// verifications, expired flows). GatewayDaemon (daemon.ts) owns the parts these handlers use.
import { protocol, type Logger } from '@gsra/common';
import type { FlowAudit } from './audit.ts';
import type { DataPlane, DataPlaneEvent } from './data-plane.ts';
import type { FtpAlg } from './ftp-alg.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { RecentRefusals, SessionBook } from './status.ts';

const { messageTypeName, peekPrefix, protoName } = protocol;
type GatewayEvent = protocol.GatewayEvent;
type GatewayResult = protocol.GatewayResult;

/** How long a rewritten PASV reply waits for the agent to acknowledge its FTP_ALIAS. */
const ALIAS_DELIVERY_MS = 1500;

/** What the daemon lends its event handlers. */
export interface DaemonEventDeps {
  log: Logger;
  metrics: GatewayMetrics;
  audit: FlowAudit;
  ftp: FtpAlg;
  control: protocol.GatewayControl;
  dataPlane: DataPlane | undefined;
  sessionBook: SessionBook;
  refusals: RecentRefusals;
  /** Stores and sends a control result, then handles its events (GatewayDaemon.apply). */
  apply: (r: GatewayResult, flowsChanged?: number[]) => void;
  now: () => number;
}

export class DaemonEvents {
  /** FTP_ALIAS messages in flight: their acknowledgement releases the PASV reply that names them. */
  private readonly aliasWaiters = new Map<string, () => void>();

  constructor(private readonly d: DaemonEventDeps) {}

  /** Resolves when the agent acknowledged FTP_ALIAS `seq` of a session (or after ALIAS_DELIVERY_MS). */
  aliasDelivered(a: { sessionId: string; seq: bigint }): Promise<void> {
    const key = `${a.sessionId}/${a.seq}`;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.aliasWaiters.delete(key);
        this.d.log.warn('FTP alias not acknowledged in time: the passive reply goes on', {
          session: a.sessionId,
        });
        resolve();
      }, ALIAS_DELIVERY_MS);
      this.aliasWaiters.set(key, () => {
        clearTimeout(timer);
        this.aliasWaiters.delete(key);
        resolve();
      });
    });
  }

  /** At stop: every PASV reply still waiting goes on. */
  releaseAliasWaiters(): void {
    for (const release of [...this.aliasWaiters.values()]) release();
  }

  /** One GatewayControl event: its log line and counters, and what the engine, the FTP ALG and the audit must know. */
  onControl(e: GatewayEvent): void {
    this.d.sessionBook.onEvent(e, this.d.now());
    this.d.refusals.onEvent(e, this.d.now());
    switch (e.kind) {
      case 'decision':
        this.d.metrics.decisions.inc({ decision: e.decision, reason: e.reason });
        this.d.log.info(e.decision === 'allow' ? 'access allowed' : 'access refused', {
          step: e.step,
          user: e.user,
          group: e.group,
          in: e.in,
          en: e.en,
          decision: e.decision,
          reason: e.reason,
        });
        break;
      case 'session-up':
        this.d.log.info('session up', {
          user: e.user,
          group: e.group,
          en: e.en,
          session: e.sessionId,
          gkVersion: e.gkVersion,
        });
        break;
      case 'session-down':
        this.d.log.info('session down', { user: e.user, session: e.sessionId, reason: e.reason });
        break;
      case 'reservation':
        break; // in the engine already (GatewayDaemon.apply, before RESERVED leaves)
      case 'reservation-ended': {
        const r = e.record;
        // The audit record takes the engine's counts before the data plane forgets the flow.
        this.d.audit.rowEnded(r, this.d.dataPlane?.flowCounts?.(r.id), e.cause, this.d.now());
        // (the audit writes the 'flow ended' line; a flow a restart could not carry also says so)
        if (r.binding && e.reason === 'lost')
          this.d.log.info('flow lost', {
            user: r.user,
            group: r.group,
            in: r.inName,
            t: e.t,
            reason: e.reason,
          });
        // The port is already back in the pool: GatewayControl gave it back through releasePorts().
        if (e.proto === 6) this.d.ftp.end(e.t);
        this.d.dataPlane?.remove(r);
        break;
      }
      case 'binding':
        if (e.from)
          // The home NAT mapped the flow elsewhere and a verified, newer packet came from there.
          this.d.log.info('flow roamed', {
            session: e.sessionId,
            proto: protoName(e.proto),
            t: e.t,
            from: e.from,
            to: `${e.ghr}:${e.m}`,
          });
        else
          this.d.log.info('flow bound', {
            session: e.sessionId,
            proto: protoName(e.proto),
            t: e.t,
            ghr: `${e.ghr}:${e.m}`,
            via: e.via,
          });
        break;
      case 'mapping':
        this.d.audit.mapped(e.record, this.d.now());
        this.d.log.info('flow mapped', {
          user: e.record.user,
          group: e.record.group,
          in: e.record.inName,
          t: e.record.t,
          d: e.record.mapping?.d,
        });
        break;
      case 'peer-moved':
        this.d.log.info('agent address changed', { session: e.sessionId, from: e.from, to: e.to });
        break;
      case 'agent-error':
        this.d.log.warn('agent reported an error', { session: e.sessionId, reason: e.reason, text: e.text });
        break;
      case 'undelivered':
        this.d.log.warn('message to agent not acknowledged', { session: e.sessionId, type: e.type });
        break;
      case 'delivered':
        this.aliasWaiters.get(`${e.sessionId}/${e.seq}`)?.();
        break;
      case 'limit':
        this.d.metrics.limitRefusals.inc({ limit: e.limit });
        this.d.log.warn('limit reached', {
          limit: e.limit,
          user: e.user,
          session: e.sessionId,
          held: e.held,
          max: e.max,
        });
        break;
      case 'dropped':
        this.d.metrics.controlRejected.inc({ reason: e.reason });
        this.d.log.debug('control datagram dropped', { from: e.from, reason: e.reason, detail: e.detail });
        break;
    }
  }

  /** One packet-engine event: a binding, a failed verification or an expired flow. */
  onDataPlane(e: DataPlaneEvent): void {
    if (e.kind === 'event-failed') {
      this.d.metrics.engine.inc({ kind: 'event-failed' });
      this.d.log.error('an engine event could not be handled (the others of its batch were)', {
        event: e.event,
        reason: e.reason,
      });
      return;
    }
    // An event about a reservation that has ended (the engine's event crossed its removal), or
    // that a newer reservation of the same port replaced, is not about today's row: ignore it.
    if (e.kind !== 'verify-failed') {
      const row = this.d.control.reservations.get(e.proto, e.t);
      if (e.kind === 'flow-expired' ? row?.id !== e.id : row !== undefined && row.id !== e.id) return;
    }
    this.d.metrics.engine.inc({ kind: e.kind });
    const now = this.d.now();
    switch (e.kind) {
      case 'bound':
        this.d.apply(
          this.d.control.onInbandBinding({ proto: e.proto, t: e.t, ghr: e.ghr, m: e.m, d: e.d }, now),
          [e.id],
        );
        break;
      case 'verify-failed':
        this.d.log.warn('packets failed verification', {
          proto: protoName(e.proto),
          t: e.t,
          from: e.from,
          count: e.count,
        });
        break;
      case 'flow-expired': {
        if (e.proto === 6) this.d.ftp.end(e.t);
        this.d.log.info('flow expired', { proto: protoName(e.proto), t: e.t, reason: e.reason });
        const row = this.d.control.reservations.get(e.proto, e.t);
        if (row?.mapping) this.d.audit.engineEnded(row, e.counts, e.reason, now);
        // its row ends too: the port goes back (cooling toward the IN if its server may hold TIME_WAIT)
        this.d.apply(this.d.control.flowEnded({ proto: e.proto, t: e.t, id: e.id, closedBy: e.closedBy }));
        break;
      }
    }
  }
}

/** A control datagram's message type, for the message counter (a bounded set of labels). */
export function controlType(data: Buffer): string {
  try {
    return messageTypeName(peekPrefix(data).type) ?? 'unknown';
  } catch {
    return 'not-gsra';
  }
}
