// The pooled ports the agent has armed in its engine (native/src/engine/pool.rs): every port a
// session's pool holds is also handed to the engine, with its keys and the VIN of its IN, so a new
// connection's first packet to a known VIN takes one and leaves at once, without this process in
// the loop. The engine says so afterwards ('pool-taken'); the daemon then records the flow as if
// it had installed it itself (docs/architecture.md, "A later connection").
//
// What this file keeps true: the engine holds exactly the ports the sessions' pools hold, each for
// its IN's VIN now (sync() after every control result, and before a DNS answer that may have
// given a VIN to another name reaches the application), so a port returned, released by the gateway,
// expired, or lost with its session is withdrawn; and a port is used by one flow only - before the
// daemon uses a pooled port itself it claims it (withdraws it from the engine, which answers
// atomically whether the engine took it first).
import { protocol } from '@gsra/common';
import type { Session } from './control-events.ts';
import type { AgentDataPlane } from './data-plane.ts';

type ProtoNumber = protocol.ProtoNumber;

/** What the engine holds of one port. */
export interface Armed {
  group: string;
  /** The session the port belongs to (a port of an older session of the group is worthless). */
  sessionId: string;
  name: string;
  vin: string;
  expiresAt: number;
  /** The daemon took this port from its pool while the engine had already taken it. */
  claimed?: protocol.PooledPort;
}

const keyOf = (proto: number, t: number) => `${proto}/${t}`;

export class ArmedPorts {
  private readonly armed = new Map<string, Armed>();

  constructor(
    private readonly dataPlane: AgentDataPlane,
    private readonly ggr: string,
    private readonly vinOf: (name: string) => string | undefined,
  ) {}

  /** Brings the engine in line with the pools of the sessions that are up. */
  sync(sessions: Iterable<Session>, now: number): void {
    const dp = this.dataPlane;
    if (!dp.armPort || !dp.withdrawPort) return;
    const want = new Map<string, { a: Armed; p: protocol.PooledPort }>();
    for (const s of sessions) {
      const sessionId = s.control.session;
      if (!s.up || !sessionId) continue;
      for (const p of s.control.pooledPorts()) {
        const vin = this.vinOf(p.inName);
        if (!vin || p.expiresAt - protocol.POOL_MARGIN_MS <= now) continue;
        want.set(keyOf(p.proto, p.t), {
          a: { group: s.group, sessionId, name: p.inName, vin, expiresAt: p.expiresAt },
          p,
        });
      }
    }
    for (const [k, a] of this.armed) {
      if (a.claimed) continue; // the engine took it: its 'pool-taken' event settles it
      const w = want.get(k);
      if (w && w.a.sessionId === a.sessionId && w.a.vin === a.vin) continue;
      const [proto, t] = k.split('/').map(Number) as [ProtoNumber, number];
      // false: the engine took it first; the entry stays for its 'pool-taken' event
      if (dp.withdrawPort(proto, t)) this.armed.delete(k);
    }
    for (const [k, { a, p }] of want) {
      const have = this.armed.get(k);
      const validMs = p.expiresAt - protocol.POOL_MARGIN_MS - now;
      if (have) {
        // Armed already: only its validity may move (renewed). Never armed again: if the engine
        // took it meanwhile, its 'pool-taken' event is on its way and its flow keeps the port.
        if (have.claimed || have.sessionId !== a.sessionId || have.vin !== a.vin) continue;
        if (have.expiresAt === a.expiresAt) continue;
        dp.renewPort?.(p.proto, p.t, validMs); // false: taken, and stays so
        have.expiresAt = a.expiresAt;
        continue;
      }
      try {
        dp.armPort({
          proto: p.proto,
          vin: a.vin,
          ggr: this.ggr,
          t: p.t,
          serial: p.serial,
          keys: p.keys,
          validMs,
        });
        this.armed.set(k, a);
      } catch {
        // refused by the engine (it cannot be, short of a bug): the port stays with the daemon,
        // which hands it to a held connection as before
      }
    }
  }

  /**
   * The daemon took `port` from its pool for a held connection: true if it may use it (the
   * engine no longer has it), false if the engine took it first (its flow keeps it).
   */
  claim(port: protocol.PooledPort): boolean {
    const k = keyOf(port.proto, port.t);
    const a = this.armed.get(k);
    if (!a) return true;
    if (this.dataPlane.withdrawPort?.(port.proto, port.t) ?? true) {
      this.armed.delete(k);
      return true;
    }
    a.claimed = port;
    return false;
  }

  /** The engine took port (proto, t): what it was armed for (null: nothing this side armed). */
  taken(proto: ProtoNumber, t: number): Armed | null {
    const k = keyOf(proto, t);
    const a = this.armed.get(k) ?? null;
    this.armed.delete(k);
    return a;
  }

  /** Everything armed is withdrawn (the agent stops). */
  clear(): void {
    this.dataPlane.clearPorts?.();
    this.armed.clear();
  }
}
