// The agent's data plane on Linux: the native engine behind NFQUEUE (raw table, before
// conntrack). Outbound packets to the VIN range, inbound packets from the gateway's port range
// and inbound DNS answers are queued; no rule uses --queue-bypass, so with the engine gone,
// nothing meant for translation leaves untranslated.
import { Engine, agentRules, directionKeys, installRules, removeRules, type Rule } from '@gsra/native';
import type { AgentDataPlane, AgentDataPlaneEvent, FiveTuple, FlowCounters, VatEntry } from './data-plane.ts';

export interface LinuxDataPlaneOptions {
  vinRange: string;
  ggr: string;
  /** The gateway's reserved port range 'first:last'. */
  ports: string;
  /** [outbound queue, inbound queue]. */
  queues: [number, number];
  netns?: string;
}

export class LinuxDataPlane implements AgentDataPlane {
  readonly engine: Engine;
  private rules: Rule[];
  private nextId = 1;
  private listeners: ((e: AgentDataPlaneEvent) => void)[] = [];

  constructor(private o: LinuxDataPlaneOptions) {
    this.engine = new Engine({
      role: 'agent',
      vinNet: o.vinRange,
      punt: [{ hook: 'in', proto: 'udp', sport: 53 }],
    });
    this.rules = agentRules({
      vinNet: o.vinRange,
      ggr: o.ggr,
      ports: o.ports,
      outQueue: o.queues[0],
      inQueue: o.queues[1],
      dnsQueue: o.queues[1],
    });
    this.engine.onEvents((evs) => {
      for (const e of evs) {
        let out: AgentDataPlaneEvent | undefined;
        if (e.type === 'held')
          out = { kind: 'held', proto: e.proto, src: e.src, sport: e.sport, dst: e.dst, dport: e.dport };
        else if (e.type === 'punt') out = { kind: 'dns-answer', id: e.id, packet: e.packet };
        else if (e.type === 'expired') out = { kind: 'flow-ended', id: e.id, state: e.state };
        else if (e.type === 'verify-failed')
          out = {
            kind: 'verify-failed',
            id: e.id,
            from: `${e.src}:${e.sport}`,
            reason: e.reason,
            count: e.count,
          };
        if (out) for (const l of this.listeners) l(out);
      }
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

  addFlow(e: VatEntry): number {
    const id = this.nextId++;
    this.engine.addFlow({
      id,
      proto: e.proto,
      pen: e.pen,
      s: e.s,
      vin: e.vin,
      d: e.d,
      ggr: e.ggr,
      t: e.t,
      ...directionKeys('agent', e.keys),
    });
    return id;
  }

  removeFlow(id: number): void {
    this.engine.removeFlow(id);
  }

  failHeld(key: FiveTuple): void {
    this.engine.failHeld(key, key.proto === 'tcp' ? 'rst' : 'unreachable');
  }

  dnsVerdict(id: number, packet?: Buffer): void {
    this.engine.verdict(id, true, packet);
  }

  flowCounters(id: number): FlowCounters | null {
    const s = this.engine.flowStats(id);
    return (
      s && {
        state: s.state,
        bytesOut: s.bytesOut,
        bytesIn: s.bytesIn,
        pktsOut: s.pktsOut,
        pktsIn: s.pktsIn,
        verifyFailed: s.verifyFailed,
      }
    );
  }

  onEvent(cb: (e: AgentDataPlaneEvent) => void): void {
    this.listeners.push(cb);
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.engine.stats())) if (typeof v === 'number') out[k] = v;
    return out;
  }

  async close(): Promise<void> {
    removeRules(this.rules, { netns: this.o.netns });
    this.engine.stop();
  }
}
