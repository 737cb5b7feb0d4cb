// The agent's status report (`gsra-agent status`, the ops endpoint's /status): its shape, and
// how it is assembled from the daemon's sessions, VINs, flows, engine and DNS counters.
import { protocol } from '@gsra/common';
import type { AgentFlows } from './agent-flows.ts';
import type { Session } from './control-events.ts';
import { credentialsExpireAt, type Credentials } from './credentials.ts';
import type { AgentDataPlane } from './data-plane.ts';
import type { DnsAnswers } from './dns-answers.ts';
import type { VinTable } from './vin.ts';

const { protoName } = protocol;

/** What `gsra-agent status` reports (the ops endpoint's /status). */
export interface AgentStatus {
  user: string;
  /** When the stored login stops being usable (ISO time), and why it already has, if it has. */
  login: { expiresAt: string; expired: string | null };
  /** nextLogin: when the agent will try to log in again (ISO time), null when it will not. */
  groups: { name: string; session: 'up' | 'down'; error: string | null; nextLogin: string | null }[];
  vins: { name: string; vin: string }[];
  flows: {
    in: string;
    proto: 'tcp' | 'udp';
    vin: string;
    state: string;
    bytesOut: number;
    bytesIn: number;
    ageSec: number;
    boundAs: string | null;
  }[];
  engine: Record<string, number>;
  /** DNS answers dropped, by reason; queries waiting for their answer. */
  dns: { refused: Record<string, number>; pending: number; vinsEvicted: number };
  /** Datagrams on the control socket not from the gateway's address and port (dropped). */
  foreignControl: number;
  /** Engine events whose handling failed (each logged; the rest of their batch was handled). */
  eventFailures: number;
}

/** What the status is made of (the daemon's parts, read at the moment `now`). */
export interface StatusSources {
  creds: Credentials;
  maxAgeHours: number;
  expired: string | undefined;
  sessions: Iterable<Session>;
  vins: VinTable;
  flows: AgentFlows;
  dataPlane: AgentDataPlane;
  dns: DnsAnswers;
  foreignControl: number;
  eventFailures: number;
  now: number;
}

export function agentStatus(d: StatusSources): AgentStatus {
  const now = d.now;
  return {
    user: d.creds.user,
    login: {
      expiresAt: new Date(credentialsExpireAt(d.creds, d.maxAgeHours)).toISOString(),
      expired: d.expired ?? null,
    },
    groups: [...d.sessions].map((s) => ({
      name: s.group,
      session: s.up ? 'up' : 'down',
      error: s.lastError ?? null,
      nextLogin: s.retryAt === undefined ? null : new Date(s.retryAt).toISOString(),
    })),
    vins: d.vins.entries().map((e) => ({ name: e.name, vin: e.vin })),
    flows: d.flows.all().map((f) => {
      const c = d.dataPlane.flowCounters(f.id);
      return {
        in: f.name,
        proto: protoName(f.key.proto),
        vin: `${f.key.dst}:${f.key.dport}`,
        state: c?.state ?? 'gone',
        bytesOut: c?.bytesOut ?? 0,
        bytesIn: c?.bytesIn ?? 0,
        ageSec: Math.round((now - f.started) / 1000),
        boundAs: f.bound ?? null,
      };
    }),
    engine: d.dataPlane.stats(),
    dns: d.dns.stats(),
    foreignControl: d.foreignControl,
    eventFailures: d.eventFailures,
  };
}
