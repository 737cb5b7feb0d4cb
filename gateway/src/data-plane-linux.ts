// The gateway's data plane on Linux: the native engine behind NFQUEUE. Internet -> GGR:t packets
// come in on one queue, LAN -> PGR:t packets on another; the engine verifies, decrypts and
// translates them. Rules never use --queue-bypass: if the engine is not running, the kernel drops
// what it would have translated (fail closed), and a crashed daemon leaves a closed door.
import { execFileSync } from 'node:child_process';
import type { protocol } from '@gsra/common';
import {
  Engine,
  directionKeys,
  ensureRules,
  gatewayRules,
  queueLayout,
  removeRules,
  type FlowCounters,
  type Reservation as EngineReservation,
  type Rule,
} from '@gsra/native';
import type {
  AlgHandler,
  DataPlane,
  DataPlaneEvent,
  EngineFlowState,
  FlowCounts,
  FlowStateHooks,
} from './data-plane.ts';
import { ALG_MAX_GROWTH } from './ftp-alg.ts';

type ProtoNumber = protocol.ProtoNumber;

export interface LinuxDataPlaneOptions {
  ggr: string;
  pgr: string;
  ports: { first: number; last: number };
  /** The first queue of each side, [in (internet side), out (LAN side)]. */
  queues: [number, number];
  /** Queues (threads) per side, flows pinned by port (native/lib/queues.ts); 0: one per CPU, capped; default 1. */
  queuesPerSide?: number;
  /** Queue threads: µs of polling before sleeping; GSO super-packets on the sending side (NfqueueOptions). */
  spinUs?: number;
  gso?: boolean;
  /** A second thread per queue sends the verdicts (NfqueueOptions.verdictThread). */
  verdictThread?: boolean;
  /** Run the rules inside this network namespace (the lab); default: the current one. */
  netns?: string;
  /** [internet interface, LAN interface]: the queue rules take each side's packets only from its own interface. */
  interfaces: [string, string];
  /** Service ports whose TCP connections go through the ALG (FTP control: [21]). */
  algPorts?: number[];
}

/** The engine names a flow's transport; GSRA's code uses the IANA number (converted only here). */
const protoNumber = (p: 'tcp' | 'udp'): ProtoNumber => (p === 'tcp' ? 6 : 17);
/** The engine's longest timeout (its API's maximum): in effect, never. */
const NEVER_MS = 1e12;

/**
 * A row of the reservation table as the engine takes it: the row's id is the engine's flow id;
 * the gateway sends with the GW→EN keys and receives with the EN→GW keys.
 */
export function engineReservation(r: protocol.Reservation): EngineReservation {
  return {
    id: r.id,
    proto: r.proto,
    t: r.t,
    pin: r.pin,
    ports: r.aliasPort !== undefined ? [r.aliasPort] : undefined,
    ...directionKeys('gateway', r.keys),
  };
}

/** The engine's counters in the gateway's directions: the engine's `in` goes to IN, its `out` to EN. */
export function flowCounts(state: string, c: FlowCounters & { close: FlowCounts['close'] }): FlowCounts {
  return {
    state,
    close: c.close,
    toIn: { packets: c.pktsIn, bytes: c.bytesIn, payload: c.payloadIn },
    toEn: { packets: c.pktsOut, bytes: c.bytesOut, payload: c.payloadOut },
    verifyFailed: c.verifyFailed,
  };
}

export class LinuxDataPlane implements DataPlane {
  readonly engine: Engine;
  private rules: Rule[];
  private alg: AlgHandler | undefined;
  private listeners: ((e: DataPlaneEvent) => void)[] = [];
  /** Per ALG flow: the verdict its previous segment still waits for (segments keep their order). */
  private algQueue = new Map<number, Promise<void>>();

  /** Per flow: the snapshot last handed to the store (base64), to hand over only changes. */
  private saved = new Map<number, string>();

  /**
   * The engine's flow snapshots (a bound TCP flow's state, no keys: native/src/engine/snapshot.rs)
   * for the gateway's store; a restart imports them with their rows, so live TCP flows go on.
   */
  readonly flowState: FlowStateHooks = {
    exportChanged: (ids) => {
      const out: Array<[number, EngineFlowState | null]> = [];
      const snaps = ids
        ? ids.map((id) => ({ id, snapshot: this.engine.flowSnapshot(id) }))
        : this.engine.flowSnapshots();
      const now = new Set<number>();
      for (const { id, snapshot } of snaps) {
        if (!snapshot) continue;
        now.add(id);
        const data = snapshot.toString('base64');
        if (this.saved.get(id) === data) continue;
        this.saved.set(id, data);
        out.push([id, { format: snapshot[0]!, data }]);
      }
      for (const id of ids ?? this.saved.keys()) {
        if (now.has(id) || !this.saved.has(id)) continue;
        this.saved.delete(id);
        out.push([id, null]);
      }
      return out;
    },
    import: (r, st) => {
      this.engine.importFlow(engineReservation(r), Buffer.from(st.data, 'base64'));
      this.saved.set(r.id, st.data);
    },
  };

  /** The queue numbers of each side, [in (internet side), out (LAN side)]. */
  readonly queues: [number[], number[]];

  constructor(private o: LinuxDataPlaneOptions) {
    // A reservation lives as long as its row in the reservation table: the gateway removes it
    // when the row ends. The engine never ends an unused reservation on its own.
    this.engine = new Engine({
      role: 'gateway',
      ggr: o.ggr,
      pgr: o.pgr,
      timeouts: { reservationMs: NEVER_MS },
      algPorts: o.algPorts ?? [],
    });
    this.queues = queueLayout(o.queues, o.queuesPerSide ?? 1);
    this.rules = gatewayRules({
      ggr: o.ggr,
      pgr: o.pgr,
      ports: `${o.ports.first}:${o.ports.last}`,
      inQueue: this.queues[0],
      outQueue: this.queues[1],
      wan: o.interfaces[0],
      lan: o.interfaces[1],
    });
    this.engine.onEvents((evs) => {
      // Each event on its own: a throw (the ALG, the control logic, an engine verdict) loses that
      // event only, never the rest of the batch — other users' events among them.
      for (const e of evs) {
        try {
          const out = this.translate(e);
          if (out) this.emit(out);
        } catch (err) {
          this.failed(e.type, err);
        }
      }
    });
  }

  private emit(out: DataPlaneEvent): void {
    for (const l of this.listeners) l(out);
  }

  private failed(event: string, err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    try {
      this.emit({ kind: 'event-failed', event, reason });
    } catch {
      // a listener that cannot even be told: nothing more to do
    }
  }

  private translate(e: ReturnType<Engine['pollEvents']>[number]): DataPlaneEvent | undefined {
    switch (e.type) {
      case 'bound':
        return { kind: 'bound', id: e.id, proto: protoNumber(e.proto), t: e.t, ghr: e.ghr, m: e.m, d: e.d };
      case 'expired':
        return {
          kind: 'flow-expired',
          id: e.id,
          proto: protoNumber(e.proto),
          t: e.t,
          reason: e.state,
          counts: flowCounts(e.state, e),
        };
      case 'verify-failed':
        return {
          kind: 'verify-failed',
          proto: protoNumber(e.proto),
          t: e.dport,
          from: `${e.src}:${e.sport}`,
          count: e.count,
        };
      case 'punt':
        if (e.flow !== null) this.onAlgPunt(e.id, e.flow, e.hook, e.packet);
        return undefined;
      default:
        return undefined;
    }
  }

  /**
   * A segment of an ALG flow: ask the ALG, then let it go on (rewritten or not). The segment runs
   * between PIN:d and PGR:t on the LAN side (toward EN before protection, toward IN after
   * translation), so its PGR port is the flow's t. An ALG that answers later (a promise) holds
   * this segment and every later one of the same flow, so they keep their order (the engine
   * adjusts sequence numbers from the verdict of a rewritten one on).
   */
  private onAlgPunt(id: number, flow: number, hook: 'in' | 'out', packet: Buffer): void {
    const ihl = (packet[0]! & 15) * 4;
    const total = packet.readUInt16BE(2);
    const hl = ihl + (packet[ihl + 12]! >> 4) * 4;
    const t = packet.readUInt16BE(hook === 'out' ? ihl + 2 : ihl);
    if (!this.alg || hl > total) return this.algVerdict(flow, id, packet, hl, hook, t, undefined);
    const payload = packet.subarray(hl, total);
    const seq = packet.readUInt32BE(ihl + 4);
    let next: ReturnType<AlgHandler>;
    try {
      next = this.alg({ t, direction: hook === 'out' ? 'to-en' : 'to-in', seq, payload });
    } catch {
      next = undefined; // an ALG bug must not eat the control connection: pass it unchanged
    }
    this.algVerdict(flow, id, packet, hl, hook, t, next);
  }

  /**
   * The ALG's answer for one punted segment: at once, or (a promise) once it resolves, after the
   * flow's earlier segments. A rewrite the engine would refuse (a length change past its limit)
   * passes unchanged, and the operator hears why.
   */
  private algVerdict(
    flow: number,
    id: number,
    packet: Buffer,
    hl: number,
    hook: 'in' | 'out',
    t: number,
    next: ReturnType<AlgHandler>,
  ): void {
    const give = (p: Buffer | undefined) => {
      const payload = packet.subarray(hl, packet.readUInt16BE(2));
      if (!p || p.equals(payload)) return void this.engine.verdict(id, true);
      const growth = p.length - payload.length;
      if (hook === 'in' ? growth !== 0 : growth > ALG_MAX_GROWTH) {
        this.engine.verdict(id, true);
        const limit = hook === 'in' ? 0 : ALG_MAX_GROWTH;
        this.failed(
          'punt',
          new Error(
            `ALG rewrite of flow ${t} changes the payload by ${growth} bytes (limit ${limit}): passed unchanged`,
          ),
        );
        return;
      }
      const out = Buffer.concat([packet.subarray(0, hl), p]);
      out.writeUInt16BE(out.length, 2);
      this.engine.verdict(id, true, out);
    };
    const before = this.algQueue.get(flow);
    if (!before && !(next instanceof Promise)) return give(next);
    const done = (before ?? Promise.resolve())
      .then(() => next)
      .then(give, () => give(undefined))
      .catch(() => {}); // the punt is gone (expired): nothing left to do
    this.algQueue.set(flow, done);
    void done.then(() => {
      if (this.algQueue.get(flow) === done) this.algQueue.delete(flow);
    });
  }

  setAlg(alg: AlgHandler): void {
    this.alg = alg;
  }

  /** Start the queues, then open the door: sysctls and iptables rules (stale copies removed first). */
  start(): void {
    for (const i of this.o.interfaces) {
      // Translated packets carry the gateway's own address as source (PGR or GGR): allow routing
      // them. Loose reverse-path filtering: strict would refuse exactly those; the queue rules
      // filter what arrives strictly, before translation (native/lib/rules.ts).
      this.sysctl(`net.ipv4.conf.${i}.accept_local=1`);
      this.sysctl(`net.ipv4.conf.${i}.rp_filter=2`);
    }
    this.sysctl('net.ipv4.conf.all.rp_filter=2');
    // The reserved range belongs to flows: the kernel must never pick a local ephemeral port from
    // it (the gateway's own LDAP connection would otherwise collide with the queue rules).
    this.sysctl(`net.ipv4.ip_local_reserved_ports=${this.o.ports.first}-${this.o.ports.last}`);
    this.engine.startNfqueue({
      queues: [
        ...this.queues[0].map((num) => ({ num, hook: 'in' as const })),
        ...this.queues[1].map((num) => ({ num, hook: 'out' as const })),
      ],
      spinUs: this.o.spinUs,
      gso: this.o.gso,
      verdictThread: this.o.verdictThread,
    });
    // The rules of a gateway that crashed are still there (closed door): keep them, add what is missing.
    ensureRules(this.rules, { netns: this.o.netns });
  }

  private sysctl(kv: string): void {
    const argv = ['sysctl', '-qw', kv];
    execFileSync(
      this.o.netns ? 'ip' : argv[0]!,
      this.o.netns ? ['netns', 'exec', this.o.netns, ...argv] : argv.slice(1),
    );
  }

  add(r: protocol.Reservation): void {
    this.engine.addReservation(engineReservation(r));
  }

  /** The engine forgets flow r.id (nothing happens if it already ended the flow itself). */
  remove(r: protocol.Reservation): void {
    this.engine.removeFlow(r.id);
  }

  onEvent(cb: (e: DataPlaneEvent) => void): void {
    this.listeners.push(cb);
  }

  flowCounts(id: number): FlowCounts | undefined {
    const f = this.engine.flowStats(id);
    return f ? flowCounts(f.state, f) : undefined;
  }

  stats(): Record<string, number> {
    const s = this.engine.stats();
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number') out[k] = v;
    // The NFQUEUE backend's own counters: backendReceived, backendSendErrors, ...
    for (const [k, v] of Object.entries(s.backend ?? {}))
      if (typeof v === 'number') out[`backend${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
    return out;
  }

  drops(): Record<string, number> {
    return this.engine.stats().drops;
  }

  async close(opts: { removeRules?: boolean } = {}): Promise<void> {
    if (opts.removeRules) removeRules(this.rules, { netns: this.o.netns });
    this.engine.stop();
  }
}
