// The agent's packet path, as the agent daemon sees it: held first packets, DNS answers to
// rewrite, VAT entries to install, flows that end. Linux: the native engine behind NFQUEUE
// (linux-data-plane.ts); Windows: the WFP callout driver (its own issue), behind this interface.
import type { protocol } from '@gsra/common';

export interface FiveTuple {
  proto: 'tcp' | 'udp';
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

export interface VatEntry {
  proto: 'tcp' | 'udp';
  pen: string;
  s: number;
  vin: string;
  d: number;
  ggr: string;
  t: number;
  keys: protocol.FlowKeys;
}

export type AgentDataPlaneEvent =
  | ({ kind: 'held' } & FiveTuple)
  | { kind: 'dns-answer'; id: number; packet: Buffer }
  | { kind: 'flow-ended'; id: number; state: string }
  | { kind: 'verify-failed'; id: number | null; from: string; reason: string; count: number };

export interface FlowCounters {
  state: string;
  bytesOut: number;
  bytesIn: number;
  pktsOut: number;
  pktsIn: number;
  verifyFailed: number;
}

export interface AgentDataPlane {
  start(): void;
  /** Install a VAT entry; packets held for its 5-tuple leave translated. Returns the flow id. */
  addFlow(e: VatEntry): number;
  removeFlow(id: number): void;
  /** Answer the application of a held flow at once: TCP RST, or ICMP unreachable for UDP. */
  failHeld(key: FiveTuple): void;
  /** Let a DNS answer through, rewritten (same length) or as it was. */
  dnsVerdict(id: number, packet?: Buffer): void;
  flowCounters(id: number): FlowCounters | null;
  onEvent(cb: (e: AgentDataPlaneEvent) => void): void;
  stats(): Record<string, number>;
  close(): Promise<void>;
}
