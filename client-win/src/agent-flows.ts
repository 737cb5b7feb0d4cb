// The agent's flows as the daemon knows them - one per VAT entry in the engine: which IN, which
// group's session, the 5-tuple on EN, the port t and the serial of its keys - and its FTP aliases
// (VIN:port -> the data port the gateway reserved for a passive reply). Every change is also a
// record of the agent's store (agent-state.ts), so a restart of the agent finds its live TCP
// flows again; the daemon flushes the store before anything that depends on it leaves.
import { protocol } from '@gsra/common';
import { flowKey, type AgentState, type FlowRecord, type SavedAgent } from './agent-state.ts';
import type { AgentDataPlane, FiveTuple, VatEntry } from './data-plane.ts';

/** A live flow: what the store keeps of it (FlowRecord) and its id in the engine. */
export interface Flow extends FlowRecord {
  id: number;
}

/** A flow as the store keeps it (its engine id is not kept: a restart gives a new one). */
const recordOf = ({ id: _id, ...rec }: Flow) => rec;

/** A data port the gateway reserved for an FTP passive reply (FTP_ALIAS): VIN:aliasPort -> t. */
export interface Alias {
  group: string;
  name: string;
  port: protocol.PooledPort;
}

export class AgentFlows {
  private readonly flows = new Map<number, Flow>();
  /** `${VIN}:${aliasPort}` -> the reserved data port (the paper's alias list). */
  private readonly aliases = new Map<string, Alias>();

  constructor(
    private readonly dataPlane: AgentDataPlane,
    private readonly state: AgentState | undefined,
    private readonly vat: (key: FiveTuple, t: number, keys: protocol.FlowKeys) => VatEntry,
  ) {}

  get(id: number): Flow | undefined {
    return this.flows.get(id);
  }
  all(): Flow[] {
    return [...this.flows.values()];
  }
  /** The flow on port (proto, t). */
  byPort(proto: number, t: number): Flow | undefined {
    return this.all().find((f) => f.t === t && f.key.proto === proto);
  }

  /**
   * A new flow on `port`: its record is written first (a restart must know the port is taken),
   * then `persist` (the daemon writes the store), then the VAT entry goes to the engine, which
   * lets the held packet go. With `id`, the engine made the flow itself on a pooled port (its
   * first packet has left: armed-ports.ts): recorded and written the same way, after the fact.
   */
  add(
    key: FiveTuple,
    name: string,
    group: string,
    port: protocol.PooledPort,
    now: number,
    persist: () => void,
    id?: number,
  ): Flow {
    const f = { name, group, key, t: port.t, serial: port.serial, started: now };
    this.state?.put(flowKey(key), f);
    persist();
    const flow = { ...f, id: id ?? this.dataPlane.addFlow(this.vat(key, port.t, port.keys)) };
    this.flows.set(flow.id, flow);
    return flow;
  }

  /**
   * The flow is gone (the engine ended it), or goes (`reset`: the gateway no longer carries it;
   * it leaves the engine and its application hears at once).
   */
  forget(f: Flow, reset = false): void {
    this.flows.delete(f.id);
    this.state?.del(flowKey(f.key));
    if (reset) this.dataPlane.resetFlow(f.id);
  }

  /**
   * The engine's snapshots of the live TCP flows go to their records (only those that changed), so
   * a restart puts each flow back where it was, not in a fresh handshake state. True if any did.
   */
  saveSnapshots(): boolean {
    if (!this.state) return false;
    let changed = false;
    for (const { id, snapshot } of this.dataPlane.flowSnapshots()) {
      const f = this.flows.get(id);
      const data = snapshot.toString('base64');
      if (!f || f.snapshot === data) continue;
      f.snapshot = data;
      this.state.put(flowKey(f.key), recordOf(f));
      changed = true;
    }
    return changed;
  }

  setAlias(k: string, a: Alias): void {
    this.aliases.set(k, a);
    this.exclude(k, true);
    const p = a.port;
    this.state?.put(`a/${k}`, {
      group: a.group,
      name: a.name,
      t: p.t,
      serial: p.serial,
      expiresAt: p.expiresAt,
    });
  }
  /** Does an FTP alias point at this VIN? */
  aliasUses(vin: string): boolean {
    for (const k of this.aliases.keys()) if (k.startsWith(`${vin}:`)) return true;
    return false;
  }
  /** The alias for VIN:port, taken (an alias serves one data connection). */
  takeAlias(k: string): Alias | undefined {
    const a = this.aliases.get(k);
    if (a) this.dropAlias(k);
    return a;
  }
  /** A connection to VIN:aliasPort takes the alias's port: the engine leaves it to the daemon. */
  private exclude(k: string, on: boolean): void {
    const i = k.lastIndexOf(':');
    this.dataPlane.excludeFromPool?.(k.slice(0, i), Number(k.slice(i + 1)), on);
  }
  private dropAlias(k: string): void {
    this.exclude(k, false);
    this.aliases.delete(k);
    this.state?.del(`a/${k}`);
  }
  expireAliases(now: number): void {
    for (const [k, a] of this.aliases) if (a.port.expiresAt <= now) this.dropAlias(k);
  }

  /** Every flow and alias of a group's session leaves (the session ended); returns the flows. */
  dropGroup(group: string): Flow[] {
    for (const [k, a] of this.aliases) if (a.group === group) this.dropAlias(k);
    const gone = this.all().filter((f) => f.group === group);
    for (const f of gone) this.forget(f, true);
    return gone;
  }

  /** The agent stops (logged out): nothing is kept. */
  clear(): void {
    for (const f of this.all()) this.forget(f);
    for (const k of [...this.aliases.keys()]) this.dropAlias(k);
  }

  /**
   * After a restart: the TCP flows whose session went on are back in the engine (same 5-tuple,
   * port and keys; the gateway still has them), in the state their last snapshot kept. UDP flows are not - their datagram counters would
   * start again, which the gateway's replay window refuses; the next datagram starts a new flow -
   * and neither are the flows of a session that did not go on. Returns the ports to release.
   */
  restore(
    saved: SavedAgent,
    secretOf: (group: string) => Buffer | null,
    now: number,
  ): { restored: number; release: Array<{ group: string; proto: protocol.ProtoNumber; t: number }> } {
    const release: Array<{ group: string; proto: protocol.ProtoNumber; t: number }> = [];
    let restored = 0;
    for (const f of saved.flows) {
      const secret = secretOf(f.group);
      if (!secret || f.key.proto !== 6) {
        this.state?.del(flowKey(f.key));
        if (secret) release.push({ group: f.group, proto: f.key.proto, t: f.t });
        continue;
      }
      const keys = protocol.deriveFlowKeys(secret, 6, f.t, f.serial);
      const snapshot = f.snapshot ? Buffer.from(f.snapshot, 'base64') : undefined;
      const id = this.dataPlane.addFlow(this.vat(f.key, f.t, keys), snapshot);
      this.flows.set(id, { ...f, id });
      restored++;
    }
    for (const [k, a] of saved.aliases) {
      const secret = secretOf(a.group);
      if (!secret || a.expiresAt <= now) {
        this.state?.del(`a/${k}`);
        continue;
      }
      const keys = protocol.deriveFlowKeys(secret, 6, a.t, a.serial);
      const port = {
        inName: a.name,
        proto: 6 as const,
        t: a.t,
        serial: a.serial,
        keys,
        expiresAt: a.expiresAt,
      };
      this.aliases.set(k, { group: a.group, name: a.name, port });
      this.exclude(k, true);
    }
    return { restored, release };
  }
}
