// The agent's data plane on Linux: the native engine behind NFQUEUE. Outbound packets to the VIN
// range, inbound packets from the gateway's port range, ICMP errors about them, and the DNS
// queries for the agent's zones with their answers are queued (native/lib/rules.ts); nothing
// else is, so the PC's other DNS and ICMP keep working while the agent is down. No rule on what
// must be translated uses --queue-bypass: with the engine gone, nothing leaves untranslated. The engine side is data-plane-engine.ts,
// shared with the Windows twin (data-plane-windows.ts).
import { agentRules, ensureRules, queueLayout, removeRules, type Rule } from '@gsra/native';
import { readFileSync } from 'node:fs';
import type { AgentConfig } from './config.ts';
import { EngineDataPlane } from './data-plane-engine.ts';

export interface LinuxDataPlaneOptions {
  vinRange: string;
  /** Probes and NAT keepalive (AgentConfig.roaming). */
  roaming?: AgentConfig['roaming'];
  ggr: string;
  /** The gateway's reserved port range 'first:last'. */
  ports: string;
  /** The first queue of each side, [outbound, inbound]. */
  queues: [number, number];
  /** Queues (threads) per side, flows pinned by port (native/lib/queues.ts); 0: one per CPU, capped; default 1. */
  queuesPerSide?: number;
  /** The agent's DNS zones and the resolvers the PC asks (empty: any). */
  dns: { zones: string[]; resolvers: string[] };
  /** Queue threads: µs of polling before sleeping; GSO super-packets on the sending side (NfqueueOptions). */
  spinUs?: number;
  gso?: boolean;
  /** A second thread per queue sends the verdicts (NfqueueOptions.verdictThread). */
  verdictThread?: boolean;
  netns?: string;
}

export class LinuxDataPlane extends EngineDataPlane {
  private rules: Rule[];
  readonly resolvers: string[];
  /** The queue numbers of each side, [outbound, inbound]. */
  readonly queues: [number[], number[]];

  constructor(private o: LinuxDataPlaneOptions) {
    super(o.vinRange, o.roaming);
    this.resolvers = o.dns.resolvers;
    this.queues = queueLayout(o.queues, o.queuesPerSide ?? 1);
    this.rules = agentRules({
      vinNet: o.vinRange,
      ggr: o.ggr,
      ports: o.ports,
      outQueue: this.queues[0],
      inQueue: this.queues[1],
      dns: o.dns,
    });
  }

  start(): void {
    this.engine.startNfqueue({
      queues: [
        ...this.queues[0].map((num) => ({ num, hook: 'out' as const })),
        ...this.queues[1].map((num) => ({ num, hook: 'in' as const })),
      ],
      spinUs: this.o.spinUs,
      gso: this.o.gso,
      verdictThread: this.o.verdictThread,
    });
    // A crashed agent's rules are still there (they dropped meanwhile): keep them, add what is
    // missing - never a moment without them, when a VIN packet would leave untranslated.
    ensureRules(this.rules, { netns: this.o.netns });
  }

  async close(): Promise<void> {
    removeRules(this.rules, { netns: this.o.netns });
    this.engine.stop();
  }
}

/** The IPv4 nameservers of /etc/resolv.conf (what the PC's applications ask). */
export function systemResolvers(file = '/etc/resolv.conf'): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
}

/** The agent's data plane on Linux, configured from the agent's config. */
export function createDataPlane(c: AgentConfig): LinuxDataPlane {
  return new LinuxDataPlane({
    vinRange: c.vinRange,
    roaming: c.roaming,
    ggr: c.gateway.address,
    ports: `${c.gateway.ports.first}:${c.gateway.ports.last}`,
    queues: c.engine.queues,
    queuesPerSide: c.engine.queuesPerSide,
    dns: { zones: c.zones, resolvers: dnsResolvers(c) },
    spinUs: c.engine.spinUs,
    gso: c.engine.gso,
    verdictThread: c.engine.verdictThread,
  });
}

/** The resolvers whose answers the agent checks: the config's, else the system's (else any). */
export const dnsResolvers = (c: AgentConfig): string[] =>
  c.dns.resolvers.length ? c.dns.resolvers : systemResolvers();
