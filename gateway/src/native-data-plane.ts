// The gateway's data plane on Linux: the native engine behind NFQUEUE. Internet -> GGR:t packets
// come in on one queue, LAN -> PGR:t packets on another; the engine verifies, decrypts and
// translates them. Rules never use --queue-bypass: if the engine is not running, the kernel drops
// what it would have translated (fail closed), and a crashed daemon leaves a closed door.
import { execFileSync } from 'node:child_process';
import { Engine, directionKeys, gatewayRules, installRules, removeRules, type Rule } from '@gsra/native';
import type { AlgHandler, DataPlane, DataPlaneEvent, DataPlaneReservation } from './data-plane.ts';

export interface NativeDataPlaneOptions {
  ggr: string;
  pgr: string;
  ports: { first: number; last: number };
  /** [inQueue, outQueue]. */
  queues: [number, number];
  /** Run the rules inside this network namespace (the lab); default: the current one. */
  netns?: string;
  interfaces: string[];
  /** Service ports whose TCP connections go through the ALG (FTP control: [21]). */
  algPorts?: number[];
}

const protoNum = (p: string | number) => (p === 'tcp' || p === 6 ? 6 : 17);

export class NativeDataPlane implements DataPlane {
  readonly engine: Engine;
  private rules: Rule[];
  private ids = new Map<string, number>();
  private alg: AlgHandler | undefined;
  private nextId = 1;
  private listeners: ((e: DataPlaneEvent) => void)[] = [];

  constructor(private o: NativeDataPlaneOptions) {
    // Unbound reservations live as long as the control plane says (it removes them when they end,
    // and renews them on keepalive); the engine's own timer is only a backstop.
    this.engine = new Engine({
      role: 'gateway',
      ggr: o.ggr,
      pgr: o.pgr,
      timeouts: { reservationMs: 86_400_000 },
      algPorts: o.algPorts ?? [],
    });
    this.rules = gatewayRules({
      ggr: o.ggr,
      pgr: o.pgr,
      ports: `${o.ports.first}:${o.ports.last}`,
      inQueue: o.queues[0],
      outQueue: o.queues[1],
    });
    this.engine.onEvents((evs) => {
      for (const e of evs) {
        const out = this.translate(e);
        if (out) for (const l of this.listeners) l(out);
      }
    });
  }

  private translate(e: ReturnType<Engine['pollEvents']>[number]): DataPlaneEvent | undefined {
    switch (e.type) {
      case 'bound':
        return { kind: 'bound', proto: protoNum(e.proto), t: e.t, ghr: e.ghr, m: e.m, d: e.d };
      case 'expired': {
        const key = `${protoNum(e.proto)}/${e.t}`;
        if (this.ids.get(key) !== e.id) return undefined; // already replaced or removed
        this.ids.delete(key);
        return { kind: 'flow-expired', proto: protoNum(e.proto), t: e.t, reason: e.state };
      }
      case 'verify-failed':
        return {
          kind: 'verify-failed',
          proto: protoNum(e.proto),
          t: e.dport,
          from: `${e.src}:${e.sport}`,
          count: e.count,
        };
      case 'punt':
        if (e.flow !== null) this.onAlgPunt(e.id, e.hook, e.packet);
        return undefined;
      default:
        return undefined;
    }
  }

  /**
   * A segment of an ALG flow: ask the ALG, then let it go on (rewritten or not). The segment runs
   * between PIN:d and PGR:t on the LAN side (toward EN before protection, toward IN after
   * translation), so its PGR port is the flow's t.
   */
  private onAlgPunt(id: number, hook: 'in' | 'out', packet: Buffer): void {
    const ihl = (packet[0]! & 15) * 4;
    const total = packet.readUInt16BE(2);
    const hl = ihl + (packet[ihl + 12]! >> 4) * 4;
    const t = packet.readUInt16BE(hook === 'out' ? ihl + 2 : ihl);
    if (!this.alg || hl > total) {
      this.engine.verdict(id, true);
      return;
    }
    const payload = packet.subarray(hl, total);
    const seq = packet.readUInt32BE(ihl + 4);
    let next: Buffer | undefined;
    try {
      next = this.alg({ t, direction: hook === 'out' ? 'to-en' : 'to-in', seq, payload });
    } catch {
      next = undefined; // an ALG bug must not eat the control connection: pass it unchanged
    }
    if (!next || next.equals(payload)) {
      this.engine.verdict(id, true);
      return;
    }
    const out = Buffer.concat([packet.subarray(0, hl), next]);
    out.writeUInt16BE(out.length, 2);
    this.engine.verdict(id, true, out);
  }

  setAlg(alg: AlgHandler): void {
    this.alg = alg;
  }

  /** Start the queues, then open the door: sysctls and iptables rules (stale copies removed first). */
  start(): void {
    for (const i of this.o.interfaces) {
      // Translated packets carry the gateway's own address as source (PGR or GGR): allow routing them.
      this.sysctl(`net.ipv4.conf.${i}.accept_local=1`);
      this.sysctl(`net.ipv4.conf.${i}.rp_filter=0`);
    }
    this.sysctl('net.ipv4.conf.all.rp_filter=0');
    // The reserved range belongs to flows: the kernel must never pick a local ephemeral port from
    // it (the gateway's own LDAP connection would otherwise collide with the queue rules).
    this.sysctl(`net.ipv4.ip_local_reserved_ports=${this.o.ports.first}-${this.o.ports.last}`);
    this.engine.startNfqueue({
      queues: [
        { num: this.o.queues[0], hook: 'in' },
        { num: this.o.queues[1], hook: 'out' },
      ],
    });
    removeRules(this.rules, { netns: this.o.netns });
    installRules(this.rules, { netns: this.o.netns });
  }

  private sysctl(kv: string): void {
    const argv = ['sysctl', '-qw', kv];
    execFileSync(
      this.o.netns ? 'ip' : argv[0]!,
      this.o.netns ? ['netns', 'exec', this.o.netns, ...argv] : argv.slice(1),
    );
  }

  addReservation(r: DataPlaneReservation): void {
    const key = `${r.proto}/${r.t}`;
    const old = this.ids.get(key);
    if (old !== undefined) this.engine.removeFlow(old);
    const id = this.nextId++;
    this.ids.set(key, id);
    this.engine.addReservation({
      id,
      proto: r.proto === 6 ? 'tcp' : 'udp',
      t: r.t,
      pin: r.pin,
      ports: r.onlyPort !== undefined ? [r.onlyPort] : undefined,
      ...directionKeys('gateway', r.keys),
    });
  }

  remove(proto: number, t: number): void {
    const key = `${proto}/${t}`;
    const id = this.ids.get(key);
    if (id === undefined) return;
    this.ids.delete(key);
    this.engine.removeFlow(id);
  }

  onEvent(cb: (e: DataPlaneEvent) => void): void {
    this.listeners.push(cb);
  }

  stats(): Record<string, number> {
    const s = this.engine.stats();
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number') out[k] = v;
    return out;
  }

  async close(): Promise<void> {
    removeRules(this.rules, { netns: this.o.netns });
    this.engine.stop();
  }
}
