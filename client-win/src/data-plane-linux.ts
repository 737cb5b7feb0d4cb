// The agent's data plane on Linux: the native engine behind NFQUEUE (raw table, before
// conntrack). Outbound packets to the VIN range, inbound packets from the gateway's port range
// and inbound DNS answers are queued; no rule uses --queue-bypass, so with the engine gone,
// nothing meant for translation leaves untranslated. The engine side is data-plane-engine.ts,
// shared with the Windows twin (data-plane-windows.ts).
import { agentRules, installRules, removeRules, type Rule } from '@gsra/native';
import type { AgentConfig } from './config.ts';
import { EngineDataPlane } from './data-plane-engine.ts';

export interface LinuxDataPlaneOptions {
  vinRange: string;
  ggr: string;
  /** The gateway's reserved port range 'first:last'. */
  ports: string;
  /** [outbound queue, inbound queue]. */
  queues: [number, number];
  netns?: string;
}

export class LinuxDataPlane extends EngineDataPlane {
  private rules: Rule[];

  constructor(private o: LinuxDataPlaneOptions) {
    super(o.vinRange);
    this.rules = agentRules({
      vinNet: o.vinRange,
      ggr: o.ggr,
      ports: o.ports,
      outQueue: o.queues[0],
      inQueue: o.queues[1],
      dnsQueue: o.queues[1],
    });
  }

  start(): void {
    this.engine.startNfqueue({
      queues: [
        { num: this.o.queues[0], hook: 'out' },
        { num: this.o.queues[1], hook: 'in' },
      ],
    });
    removeRules(this.rules, { netns: this.o.netns });
    installRules(this.rules, { netns: this.o.netns });
  }

  async close(): Promise<void> {
    removeRules(this.rules, { netns: this.o.netns });
    this.engine.stop();
  }
}

/** The agent's data plane on Linux, configured from the agent's config. */
export function createDataPlane(c: AgentConfig): LinuxDataPlane {
  return new LinuxDataPlane({
    vinRange: c.vinRange,
    ggr: c.gateway.address,
    ports: `${c.gateway.ports.first}:${c.gateway.ports.last}`,
    queues: c.engine.queues,
  });
}
