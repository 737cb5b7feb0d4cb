// In-memory wiring of AgentControl and GatewayControl for the protocol tests.
import {
  AgentControl,
  GatewayControl,
  type AgentEvent,
  type AgentResult,
  type DirectoryUser,
  type Endpoint,
  type GatewayEvent,
  type GatewayPolicy,
  type GatewayResult,
  type ReachDecision,
  type ReleasedPorts,
  type ReserveRequest,
  type UserLookupRefusal,
} from '../../src/protocol/index.ts';

export const T0 = Date.UTC(2026, 10, 23, 1, 0, 0);
export const GK1 = Buffer.alloc(32, 0x11);
export const GK2 = Buffer.alloc(32, 0x22);
export const ALICE_SECRET = Buffer.alloc(32, 0xa1);
export const BOB_SECRET = Buffer.alloc(32, 0xb0);
/** The gateway's reset key: a gateway "restarted" in a test keeps it, as gsra-gateway does. */
export const RESET_KEY = Buffer.alloc(32, 0x5e);

/** A directory with alice (sales), bob (dev) and a port pool 40000..40999. */
export class FakeDirectory implements GatewayPolicy {
  users = new Map<string, DirectoryUser>([
    [
      'alice',
      {
        userDn: 'uid=alice,ou=people,dc=corp',
        secret: ALICE_SECRET,
        groups: [{ name: 'sales', keys: [{ version: 1, key: GK1 }] }],
      },
    ],
    [
      'bob',
      {
        userDn: 'uid=bob,ou=people,dc=corp',
        secret: BOB_SECRET,
        groups: [{ name: 'dev', keys: [{ version: 1, key: GK1 }] }],
      },
    ],
  ]);
  hosts = new Map<string, string>([
    ['intra1.corp.example', 'sales'],
    ['intra2.corp.example', 'dev'],
  ]);
  /** PIN of every IN (the LAN address the gateway's data plane sends the flow to). */
  pinOf = (inName: string) => (inName === 'intra2.corp.example' ? '10.0.0.12' : '10.0.0.11');
  free: number[] = Array.from({ length: 1000 }, (_, i) => 40000 + i);
  reserveCalls: ReserveRequest[] = [];
  released: number[] = [];

  lookupUser(id: string): DirectoryUser | UserLookupRefusal | null {
    return this.users.get(id) ?? null;
  }
  mayReach(_user: string, group: string, inName: string): ReachDecision {
    const g = this.hosts.get(inName);
    if (g === undefined) return { allow: false, reason: 'unknown-in' };
    return g === group ? { allow: true, pin: this.pinOf(inName) } : { allow: false, reason: 'not-in-group' };
  }
  reservePorts(req: ReserveRequest) {
    this.reserveCalls.push(req);
    if (this.free.length < req.count) return { reason: 'no-ports' as const };
    return { ports: this.free.splice(0, req.count) };
  }
  releasePorts(r: ReleasedPorts) {
    for (const p of r.ports) {
      this.released.push(p.t);
      this.free.push(p.t);
    }
  }
}

export const EN: Endpoint = { addr: '203.0.113.2', port: 61000 };

/** Delivers datagrams both ways until quiet; collects every event. */
export class Wire {
  agentEvents: AgentEvent[] = [];
  gatewayEvents: GatewayEvent[] = [];
  /** datagrams seen on the wire, for replay tests */
  toGateway: Buffer[] = [];
  toAgent: Buffer[] = [];
  /** Drop filter: return true to lose the datagram. */
  lose: (dir: 'up' | 'down', data: Buffer) => boolean = () => false;
  constructor(
    public agent: AgentControl,
    public gw: GatewayControl,
    public from: Endpoint = EN,
  ) {}

  run(r: AgentResult, now: number): void {
    this.agentEvents.push(...r.events);
    let up = r.send.map((o) => ({
      data: o.data,
      port: o.dest.via === 'flow' ? o.dest.t : this.gw.controlPort,
    }));
    let guard = 0;
    while (up.length && guard++ < 100) {
      const down: Buffer[] = [];
      for (const u of up) {
        this.toGateway.push(u.data);
        if (this.lose('up', u.data)) continue;
        const g = this.gw.handleDatagram(u.data, this.from, now, u.port);
        this.gateway(g, down);
      }
      up = [];
      for (const d of down) {
        this.toAgent.push(d);
        if (this.lose('down', d)) continue;
        const a = this.agent.handleDatagram(d, now);
        this.agentEvents.push(...a.events);
        up.push(
          ...a.send.map((o) => ({
            data: o.data,
            port: o.dest.via === 'flow' ? o.dest.t : this.gw.controlPort,
          })),
        );
      }
    }
  }
  gateway(g: GatewayResult, down: Buffer[]): void {
    this.gatewayEvents.push(...g.events);
    for (const s of g.send) down.push(s.data);
  }
  /** Runs a gateway-side result (poll, in-band binding, FTP alias) through the agent. */
  fromGateway(g: GatewayResult, now: number): void {
    const down: Buffer[] = [];
    this.gateway(g, down);
    for (const d of down) {
      this.toAgent.push(d);
      if (this.lose('down', d)) continue;
      this.run(this.agent.handleDatagram(d, now), now);
    }
  }
}

/** alice's agent (sales, GK version 1), for a test that brings its own gateway. */
export const aliceAgent = () =>
  new AgentControl({
    user: 'alice',
    userSecret: ALICE_SECRET,
    group: 'sales',
    groupKey: { version: 1, key: GK1 },
  });

export function setup(
  opts: {
    user?: string;
    secret?: Buffer;
    group?: string;
    gk?: { version: number; key: Buffer };
    vinOf?: (inName: string) => string | undefined;
  } = {},
) {
  const dir = new FakeDirectory();
  const gw = new GatewayControl({ policy: dir, resetKey: RESET_KEY });
  const agent = new AgentControl({
    user: opts.user ?? 'alice',
    userSecret: opts.secret ?? ALICE_SECRET,
    group: opts.group ?? 'sales',
    groupKey: opts.gk ?? { version: 1, key: GK1 },
    ...(opts.vinOf ? { vinOf: opts.vinOf } : {}),
  });
  const wire = new Wire(agent, gw);
  return { dir, gw, agent, wire };
}

export function login(w: Wire, now = T0): void {
  w.run(w.agent.login(now), now);
}
