// What the gateway's control plane refused or shed under load: a Prometheus counter per kind,
// and one summary log line per interval while it goes on (never one line per datagram: a flood
// must not become a flood of log lines). Memory is bounded: at most MAX_SOURCES sources are
// named per interval, the rest are counted together.
import type { Logger } from '@gsra/common';
import { Counter } from 'prom-client';
import type { GatewayMetrics } from './metrics.ts';

export type LoadKind = 'hello-rate-limited' | 'auth-rate-limited' | 'answer-shed' | 'answer-congested';

const MAX_SOURCES = 256;
const WORDS: Record<LoadKind, string> = {
  'hello-rate-limited': 'HELLOs over their source limit (dropped)',
  'auth-rate-limited': 'AUTHs over their source limit (dropped)',
  'answer-shed': 'answers to unproven sources over the budget (shed)',
  'answer-congested': 'answers to unproven sources while their socket was congested (shed)',
};

export class ControlLoad {
  private readonly counter: Counter<'kind'>;
  private counts = new Map<LoadKind, number>();
  private sources = new Map<string, number>();
  private others = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    metrics: GatewayMetrics,
    private readonly intervalMs = 10_000,
  ) {
    this.counter = new Counter({
      name: 'gsra_gateway_control_shed_total',
      help: 'Control datagrams dropped or answers shed to protect the control plane, by kind',
      labelNames: ['kind'],
      registers: [metrics.registry],
    });
  }

  count(kind: LoadKind, source: string): void {
    this.counter.inc({ kind });
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const n = this.sources.get(source);
    if (n !== undefined) this.sources.set(source, n + 1);
    else if (this.sources.size < MAX_SOURCES) this.sources.set(source, 1);
    else this.others++;
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes the summary line of the interval that ended (if anything happened in it). */
  flush(): void {
    this.timer = undefined;
    if (this.counts.size === 0) return;
    const top = [...this.sources].sort((a, b) => b[1] - a[1]).slice(0, 5);
    this.log.warn('control plane under load: legitimate sessions keep priority', {
      reason: 'flood',
      seconds: this.intervalMs / 1000,
      ...Object.fromEntries([...this.counts].map(([k, v]) => [k, v])),
      what: [...this.counts.keys()].map((k) => WORDS[k]).join('; '),
      sources: this.sources.size + (this.others ? 1 : 0),
      top: top.map(([s, n]) => `${s} ${n}`).join(', '),
    });
    this.counts = new Map();
    this.sources = new Map();
    this.others = 0;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.flush();
  }
}
