// What the agent's control state machine (AgentControl) is configured with and tells its I/O
// layer: the datagrams to send (and where from) and the events to act on.

import type { ProtoNumber, ReasonName } from './constants.ts';
import type { PooledPort } from './agent-pools.ts';
import type { ChannelState } from './channel.ts';

export interface AgentOptions {
  user: string;
  /** The user's secret read from LDAP. */
  userSecret: Buffer;
  group: string;
  /** The group key version to use (normally the newest the agent could read). */
  groupKey: { version: number; key: Buffer };
  /** Ports to keep pre-reserved per (IN, proto) (default 4), topped up below `poolLow` (default 2). */
  poolTarget?: number;
  poolLow?: number;
  randomBytes?: (n: number) => Buffer;
  /**
   * The VIN (dotted IPv4) the agent hands applications for `inName`, sent in RESERVE so that the
   * gateway's FTP ALG can write it into PASV replies. Undefined (or no vinOf): 0.0.0.0, none.
   */
  vinOf?: (inName: string) => string | undefined;
  /**
   * How long the session (and its flows) is kept while KEEPALIVEs go unanswered - a gateway
   * restarting keeps the session - before it counts as lost (default: the reservation lifetime
   * the gateway announced in AUTH_OK, 120 s by default).
   */
  unreachableGraceMs?: number;
}

/** What AgentControl.save() returns and resume() takes: a session that outlives a restart of the agent. */
export interface AgentSessionState {
  sessionId: string;
  /** The session secret, base64 (the store encrypts it at rest). */
  secret: string;
  channel: ChannelState;
  clockOffset: number;
  keepaliveEveryMs: number;
  reservationLifetimeMs: number;
  unreachableGraceMs: number;
  /** Pooled ports; their flow keys are derived again from the secret. */
  pools: Array<Omit<PooledPort, 'keys'>>;
  /** The session's stateless reset token (AUTH_OK), base64: a resumed session still knows it. */
  resetToken?: string;
}

export type AgentState = 'idle' | 'hello' | 'auth' | 'up' | 'failed';

/** Where a datagram goes: the control socket, or the flow's own socket PEN:s → GGR:t (BIND probe). */
export type AgentDest = { via: 'control' } | { via: 'flow'; proto: ProtoNumber; s: number; t: number };
export interface AgentOutgoing {
  dest: AgentDest;
  data: Buffer;
}

export type AgentEvent =
  | {
      kind: 'session-up';
      sessionId: string;
      sessionLifetime: number;
      keepaliveInterval: number;
      /** A session saved before a restart of the agent, taken up again (resume()). */
      resumed?: boolean;
    }
  /** KEEPALIVEs go unanswered: the session and its flows are kept for the grace (see unreachableGraceMs). */
  | { kind: 'gateway-unreachable' }
  | { kind: 'gateway-reachable'; afterMs: number }
  | { kind: 'session-down'; reason: ReasonName | 'timeout' | 'logout' }
  | { kind: 'refused'; step: 'auth'; reason: ReasonName; text: string; authenticated: boolean }
  | { kind: 'reserved'; inName: string; proto: ProtoNumber; ports: PooledPort[] }
  | {
      kind: 'reserve-failed';
      inName: string;
      proto: ProtoNumber;
      reason: ReasonName | 'timeout';
      text: string;
    }
  | { kind: 'bound'; proto: ProtoNumber; t: number; ghr: string; m: number; d: number }
  | { kind: 'mapped'; proto: ProtoNumber; t: number; d: number; lifetime: number }
  | { kind: 'request-failed'; type: string; reason: ReasonName | 'timeout'; text: string }
  | { kind: 'ftp-alias'; ctrlT: number; aliasPort: number; port: PooledPort }
  | { kind: 'released'; proto: ProtoNumber; t: number }
  /** KEEPALIVE_ACK saw the control channel arrive from another public address or port. */
  | { kind: 'address-changed'; from: string; to: string }
  /** An ERROR that answers no request (bad-mac, stale-timestamp, a flow refused at binding, ...). */
  | { kind: 'gateway-error'; reason: ReasonName; text: string }
  | { kind: 'dropped'; reason: string; detail?: string };

export interface AgentResult {
  send: AgentOutgoing[];
  events: AgentEvent[];
}
