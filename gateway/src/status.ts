// What `GET /status` answers (the JSON behind `gsra-gateway status` and the status page): the
// gateway's health, its directory snapshot's age, its sessions, its live flows with what they
// moved, every reserved port, the latest refusals with their reasons, refused packets and control
// messages by reason, and the packet engine's own state. Read-only, and never a secret: no key,
// no session secret, no password — session ids are shown shortened, as in the log.
import { protocol, type StoreInfo } from '@gsra/common';
import type { LiveFlowRecord } from './audit.ts';

const { endpointString, protoName } = protocol;
type GatewayEvent = protocol.GatewayEvent;
type Reservation = protocol.Reservation;

export interface SessionEntry {
  /** The first 8 hex digits of the session id (enough to match the log's `session` field). */
  id: string;
  user: string;
  group: string;
  /** The agent's control address as the gateway sees it now. */
  en: string;
  since: string;
  reservations: number;
  flows: number;
}

export interface RefusalEntry {
  at: string;
  step: string;
  user: string;
  group: string;
  in: string;
  en: string;
  reason: string;
}

export interface ReservationEntry {
  user: string;
  group: string;
  in: string;
  proto: string;
  t: number;
  en: string;
  binding: string | null;
  d: number | null;
  expiresInSec: number;
}

export interface EngineEntry {
  /** False when the gateway runs without a packet engine (`--no-engine`). */
  running: boolean;
  backend: string | null;
  /** Entries in the engine's table: reserved ports, bound or not. */
  entries: number;
  packets: number;
  /** Panics caught while processing a packet, events lost, backend send/receive errors: 0 when healthy. */
  panics: number;
  eventsDropped: number;
  backendErrors: number;
  counters: Record<string, number>;
}

export interface GatewayStatus {
  generatedAt: string;
  uptimeSec: number;
  node: string;
  health: { ok: boolean; problems: string[] };
  policy: { ageSec: number | null; usable: boolean; refreshSec: number };
  /** The control plane's state sizes, the admission limiter's sources, the sockets' send queues. */
  control: {
    sessions: number;
    reservations: number;
    authCache: number;
    ephemeralKeys: number;
    helloSources: number;
    authSources: number;
    proven: number;
    queued: { priority: number; bulk: number } | null;
  };
  /** cooling: free ports still held back from one IN whose server may hold TIME_WAIT (ports.ts). */
  ports: { range: string; inUse: number; cooling: number };
  /** The state store (docs/reliability.md): where, how big, whether its last load had a problem. */
  state: StoreInfo | null;
  /** Whether a restart can carry bound flows on (the engine exports its flow state). */
  engineCarriesFlows: boolean;
  sessions: SessionEntry[];
  flows: LiveFlowRecord[];
  reservations: ReservationEntry[];
  refusals: RefusalEntry[];
  /** Packets the engine refused, by reason; control datagrams refused before any state, by reason. */
  drops: { packets: Record<string, number>; control: Record<string, number> };
  engine: EngineEntry;
}

/** Refused packets by reason (the engine's drop counters, docs/pccom.md §11.1): the reasons that happened. */
export function packetDrops(drops: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(drops ?? {})) if (v) out[k] = v;
  return out;
}

/** The engine's state from the data plane's counters (null: no engine). */
export function engineEntry(stats: Record<string, number> | null, backend: string | null): EngineEntry {
  const n = (k: string) => stats?.[k] ?? 0;
  return {
    running: stats !== null,
    backend: stats ? backend : null,
    entries: n('flows'),
    packets: n('packets'),
    panics: n('panics'),
    eventsDropped: n('eventsDropped'),
    backendErrors: n('backendSendErrors') + n('backendRecvErrors'),
    counters: stats ?? {},
  };
}

/** The sessions as the control events tell them (GatewayControl keeps no start time). */
export class SessionBook {
  private readonly sessions = new Map<string, Omit<SessionEntry, 'reservations' | 'flows'>>();

  onEvent(e: GatewayEvent, now: number): void {
    if (e.kind === 'session-up')
      this.sessions.set(e.sessionId, {
        id: e.sessionId.slice(0, 8),
        user: e.user,
        group: e.group,
        en: e.en,
        since: new Date(now).toISOString(),
      });
    else if (e.kind === 'session-down') this.sessions.delete(e.sessionId);
    else if (e.kind === 'peer-moved') {
      const s = this.sessions.get(e.sessionId);
      if (s) s.en = e.to;
    }
  }

  list(rows: Iterable<Reservation>): SessionEntry[] {
    const count = new Map<string, { reservations: number; flows: number }>();
    for (const r of rows) {
      const c = count.get(r.sessionId) ?? { reservations: 0, flows: 0 };
      c.reservations++;
      if (r.mapping) c.flows++;
      count.set(r.sessionId, c);
    }
    return [...this.sessions.entries()].map(([id, s]) => ({
      ...s,
      ...(count.get(id) ?? { reservations: 0, flows: 0 }),
    }));
  }
}

/** The latest refusals (newest first, bounded), and refused control datagrams counted by reason. */
export class RecentRefusals {
  private readonly items: RefusalEntry[] = [];
  private readonly dropped = new Map<string, number>();
  constructor(private readonly max = 50) {}

  onEvent(e: GatewayEvent, now: number): void {
    if (e.kind === 'dropped') this.dropped.set(e.reason, (this.dropped.get(e.reason) ?? 0) + 1);
    if (e.kind !== 'decision' || e.decision !== 'deny') return;
    this.items.unshift({
      at: new Date(now).toISOString(),
      step: e.step,
      user: e.user,
      group: e.group,
      in: e.in,
      en: e.en,
      reason: e.reason,
    });
    if (this.items.length > this.max) this.items.length = this.max;
  }

  list(): RefusalEntry[] {
    return [...this.items];
  }

  controlDrops(): Record<string, number> {
    return Object.fromEntries(this.dropped);
  }
}

export function reservationEntry(r: Reservation, now: number): ReservationEntry {
  return {
    user: r.user,
    group: r.group,
    in: r.inName,
    proto: protoName(r.proto),
    t: r.t,
    en: endpointString(r.en),
    binding: r.binding ? `${r.binding.ghr}:${r.binding.m}` : null,
    d: r.mapping?.d ?? null,
    expiresInSec: Math.max(0, Math.round((r.expiresAt - now) / 1000)),
  };
}
