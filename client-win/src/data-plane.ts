// The agent's packet path, as the agent daemon sees it: held first packets, DNS answers to
// rewrite, VAT entries to install, flows that end. One file per platform implements it:
// data-plane-linux.ts (the native engine behind NFQUEUE), data-plane-windows.ts (WinDivert),
// both on the engine part they share (data-plane-engine.ts); platformDataPlane() below is the
// one place that chooses.
import type { protocol } from '@gsra/common';
import type { AgentConfig } from './config.ts';

/** A flow's transport is its IANA number here as everywhere in GSRA (names only in logs). */
export interface FiveTuple {
  proto: protocol.ProtoNumber;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

export interface VatEntry {
  proto: protocol.ProtoNumber;
  pen: string;
  s: number;
  vin: string;
  d: number;
  ggr: string;
  t: number;
  keys: protocol.FlowKeys;
}

/** A pooled port handed to the engine (armed-ports.ts): a new flow to `vin` may take it. */
export interface ArmPort {
  proto: protocol.ProtoNumber;
  vin: string;
  ggr: string;
  t: number;
  serial: number;
  keys: protocol.FlowKeys;
  /** How long from now the engine may take it. */
  validMs: number;
}

export type AgentDataPlaneEvent =
  | ({ kind: 'held' } & FiveTuple)
  /** A new connection took pooled port t in the engine and left; flow `id` exists there. */
  | ({ kind: 'pool-taken'; id: number; t: number; serial: number } & FiveTuple)
  | { kind: 'dns-answer'; id: number; packet: Buffer }
  /** An outbound DNS query for a zone name, leaving (accepted unchanged whatever happens). */
  | { kind: 'dns-query'; packet: Buffer }
  | { kind: 'flow-ended'; id: number; state: string }
  | { kind: 'verify-failed'; id: number | null; from: string; reason: string; count: number }
  /** Handling one engine event failed: that event is lost (logged, counted), the rest of its batch is not. */
  | { kind: 'event-failed'; event: string; reason: string };

export interface FlowCounters {
  state: string;
  bytesOut: number;
  bytesIn: number;
  pktsOut: number;
  pktsIn: number;
  verifyFailed: number;
}

export interface AgentDataPlane {
  /** The resolvers whose answers the agent checks (empty: any); its rules take only theirs. */
  readonly resolvers: string[];
  start(): void;
  /**
   * Install a VAT entry; packets held for its 5-tuple leave translated. With a snapshot (a
   * restart), the flow goes on in the state it kept; a snapshot the engine refuses is ignored
   * (the flow starts fresh, as without one). Returns the flow id.
   */
  addFlow(e: VatEntry, snapshot?: Buffer): number;
  /** Snapshots of the flows that have one (live TCP flows), by flow id. */
  flowSnapshots(): Array<{ id: number; snapshot: Buffer }>;
  removeFlow(id: number): void;
  /**
   * Removes a live flow the gateway no longer carries and makes its application hear it at once:
   * a TCP connection is reset, even one that only waits for data (UDP: the flow just leaves).
   */
  resetFlow(id: number): void;
  /** Answer the application of a held flow at once: TCP RST, or ICMP unreachable for UDP. */
  failHeld(key: FiveTuple): void;
  /**
   * The engine's own pool (armed-ports.ts; a data plane without one leaves every new connection
   * to the 'held' path): arm a pooled port; withdraw one (true if the engine had not taken it);
   * withdraw all; leave new connections to vin:d to the daemon (an FTP alias) or not.
   */
  armPort?(p: ArmPort): void;
  withdrawPort?(proto: protocol.ProtoNumber, t: number): boolean;
  /** Its reservation was renewed: true if the engine still holds it (false: a flow took it). */
  renewPort?(proto: protocol.ProtoNumber, t: number, validMs: number): boolean;
  clearPorts?(): void;
  excludeFromPool?(vin: string, d: number, on: boolean): void;
  /**
   * Every live flow sends a probe now (docs/pccom.md §6.1): the public address changed, so the
   * gateway must hear each flow from its new mapping. Returns how many probes left.
   */
  probeAll?(): number;
  /** Let a DNS answer through, rewritten (same length) or as it was. */
  dnsVerdict(id: number, packet?: Buffer): void;
  /** Drop a DNS answer (forged, or an answer to no query the agent saw). */
  dnsDrop(id: number): void;
  flowCounters(id: number): FlowCounters | null;
  onEvent(cb: (e: AgentDataPlaneEvent) => void): void;
  stats(): Record<string, number>;
  /** Packets the engine refused, by reason (docs/pccom.md; native DROP_REASONS). */
  drops?(): Record<string, number>;
  close(): Promise<void>;
}

/** The data plane of the platform the agent runs on (each platform's file exports createDataPlane). */
export async function platformDataPlane(config: AgentConfig): Promise<AgentDataPlane> {
  switch (process.platform) {
    case 'linux':
      return (await import('./data-plane-linux.ts')).createDataPlane(config);
    case 'win32':
      return (await import('./data-plane-windows.ts')).createDataPlane(config);
    default:
      throw new Error(`gsra-agent has no data plane for ${process.platform}`);
  }
}
