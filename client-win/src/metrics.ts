// What the agent counts, in Prometheus form (prom-client), served on the agent's local operations
// endpoint as /metrics (loopback by default: `ops.listen`). The data plane's refused packets are
// counters of packets by reason, read from the engine at each scrape; the summary log line of the
// same drops comes from DropSummary (native/lib/drops.ts).
import type { ServerResponse } from 'node:http';
import { syncCounter } from '@gsra/native';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface AgentMetricsSource {
  /** Packets the engine refused, by reason. */
  drops(): Record<string, number> | undefined;
  /** The engine's counters (packets translated each way, held, ...). */
  engine(): Record<string, number>;
  /** Live sessions (one per group) and flows. */
  sessions(): number;
  flows(): number;
}

export class AgentMetrics {
  readonly registry = new Registry();

  constructor(src: AgentMetricsSource) {
    new Counter({
      name: 'gsra_agent_dropped_packets_total',
      help: 'Packets the packet engine refused, by reason (old-data: payloads of already acknowledged segments)',
      labelNames: ['reason'],
      registers: [this.registry],
      collect() {
        syncCounter(this, src.drops());
      },
    });
    new Counter({
      name: 'gsra_agent_engine_packets_total',
      help: 'The packet engine counters (packets unless the name says otherwise), by counter',
      labelNames: ['counter'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [counter, n] of Object.entries(src.engine())) this.inc({ counter }, n);
      },
    });
    new Gauge({
      name: 'gsra_agent_sessions',
      help: 'Live sessions with the gateway (one per group)',
      registers: [this.registry],
      collect() {
        this.set(src.sessions());
      },
    });
    new Gauge({
      name: 'gsra_agent_flows',
      help: 'Flows in the VAT table',
      registers: [this.registry],
      collect() {
        this.set(src.flows());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'gsra_agent_' });
  }

  /** Answers GET /metrics. */
  async serve(res: ServerResponse): Promise<void> {
    res.setHeader('content-type', this.registry.contentType);
    res.end(await this.registry.metrics());
  }
}
