// What the Linux and Windows data planes share: the native engine in the agent role, its
// events turned into the agent's, VAT entries, held-flow failures, DNS verdicts, counters.
// The platform files add how packets reach the engine (data-plane-linux.ts: NFQUEUE rules;
// data-plane-windows.ts: WinDivert handles) in start() and close().
// This is the engine's boundary: the engine names a flow's transport ('tcp', 'udp'), the agent's
// code uses the IANA number; the conversion is here and nowhere else.
import { protocol } from '@gsra/common';
import { Engine, directionKeys, type AgentFlow } from '@gsra/native';
import type { AgentConfig } from './config.ts';
import type {
  AgentDataPlane,
  AgentDataPlaneEvent,
  ArmPort,
  FiveTuple,
  FlowCounters,
  VatEntry,
} from './data-plane.ts';

const { protoName } = protocol;
const protoNumber = (p: 'tcp' | 'udp'): protocol.ProtoNumber => (p === 'tcp' ? 6 : 17);

/** A VAT entry as the engine takes it: the agent sends with the EN→GW keys, receives with GW→EN. */
export function engineFlow(id: number, e: VatEntry): AgentFlow {
  const { keys, ...where } = e;
  return { id, ...where, ...directionKeys('agent', keys) };
}

export abstract class EngineDataPlane implements AgentDataPlane {
  readonly engine: Engine;
  abstract readonly resolvers: string[];
  private nextId = 1;
  private listeners: ((e: AgentDataPlaneEvent) => void)[] = [];

  constructor(vinRange: string, roaming?: AgentConfig['roaming']) {
    this.engine = new Engine({
      role: 'agent',
      vinNet: vinRange,
      // A new connection waits while its port is negotiated: the daemon fails it after 5 s when
      // the gateway is silent, after up to 25 s when it answers but is busy (a burst); the engine
      // keeps its packets a little longer, and room for a burst of 1 000 with SYN retransmissions.
      timeouts: { heldMs: 30_000 },
      maxHeldTotal: 4096,
      // DNS answers (to rewrite) and the queries they answer (to check them against); the
      // platform's rules take only those of the configured zones and resolvers.
      punt: [
        { hook: 'in', proto: 'udp', sport: 53 },
        { hook: 'out', proto: 'udp', dport: 53 },
      ],
      ...(roaming && {
        timeouts: { keepaliveMs: roaming.persistentKeepaliveSec * 1000, quietProbeMs: roaming.quietProbeMs },
      }),
    });
    this.engine.onEvents((evs) => {
      // Each event on its own: a throw loses that event only, never the rest of the batch.
      for (const e of evs) {
        try {
          this.handle(e);
        } catch (err) {
          this.failed(e.type, err);
          // A punted packet whose handling failed would wait for its verdict: a query leaves
          // (it is only watched), an answer that could not be checked is dropped.
          if (e.type === 'punt') {
            try {
              this.engine.verdict(e.id, e.hook === 'out');
            } catch {
              // already decided, or the engine is gone
            }
          }
        }
      }
    });
  }

  private failed(event: string, err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    try {
      for (const l of this.listeners) l({ kind: 'event-failed', event, reason });
    } catch {
      // a listener that cannot even be told: nothing more to do
    }
  }

  private handle(e: ReturnType<Engine['pollEvents']>[number]): void {
    let out: AgentDataPlaneEvent | undefined;
    if (e.type === 'held')
      out = {
        kind: 'held',
        proto: protoNumber(e.proto),
        src: e.src,
        sport: e.sport,
        dst: e.dst,
        dport: e.dport,
      };
    else if (e.type === 'pool-taken')
      out = {
        kind: 'pool-taken',
        id: e.id,
        t: e.t,
        serial: e.serial,
        proto: protoNumber(e.proto),
        src: e.src,
        sport: e.sport,
        dst: e.dst,
        dport: e.dport,
      };
    else if (e.type === 'punt' && e.hook === 'out') {
      this.engine.verdict(e.id, true); // only watched: it leaves unchanged, now
      out = { kind: 'dns-query', packet: e.packet };
    } else if (e.type === 'punt') out = { kind: 'dns-answer', id: e.id, packet: e.packet };
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

  abstract start(): void;
  abstract close(): Promise<void>;

  addFlow(e: VatEntry, snapshot?: Buffer): number {
    const id = this.nextId++;
    if (snapshot) {
      try {
        this.engine.importFlow(engineFlow(id, e), snapshot);
        return id;
      } catch {
        // another engine's format, or another flow's: the flow starts fresh instead
      }
    }
    this.engine.addFlow(engineFlow(id, e));
    return id;
  }

  flowSnapshots(): Array<{ id: number; snapshot: Buffer }> {
    return this.engine.flowSnapshots();
  }

  removeFlow(id: number): void {
    this.engine.removeFlow(id);
  }

  resetFlow(id: number): void {
    this.engine.resetFlow(id);
  }

  failHeld(key: FiveTuple): void {
    this.engine.failHeld({ ...key, proto: protoName(key.proto) }, key.proto === 6 ? 'rst' : 'unreachable');
  }

  armPort(p: ArmPort): void {
    const { keys, ...where } = p;
    this.engine.poolAdd({ ...where, ...directionKeys('agent', keys) });
  }

  withdrawPort(proto: protocol.ProtoNumber, t: number): boolean {
    return this.engine.poolWithdraw(proto, t);
  }

  renewPort(proto: protocol.ProtoNumber, t: number, validMs: number): boolean {
    return this.engine.poolRenew(proto, t, validMs);
  }

  clearPorts(): void {
    this.engine.poolClear();
  }

  excludeFromPool(vin: string, d: number, on: boolean): void {
    this.engine.poolExclude(vin, d, on);
  }

  probeAll(): number {
    return this.engine.probe();
  }

  dnsVerdict(id: number, packet?: Buffer): void {
    this.engine.verdict(id, true, packet);
  }

  dnsDrop(id: number): void {
    this.engine.verdict(id, false);
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

  drops(): Record<string, number> {
    return this.engine.stats().drops;
  }
}
