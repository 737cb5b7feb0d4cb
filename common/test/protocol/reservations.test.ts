// Reserved ports, end to end through both state machines: RESERVE and the agent's pools, the
// decisions, in-band and explicit binding, RELEASE, lifetimes, FTP aliases, and a pool or a
// directory that misbehaves. Every reserved port lives in the gateway's reservation table.
import t from 'tap';
import { decode, GatewayControl, type AgentEvent } from '../../src/protocol/index.ts';
import { aliceAgent, T0, login, setup, Wire } from './harness.ts';

const IN1 = 'intra1.corp.example';
const IN2 = 'intra2.corp.example';
const ev = <K extends AgentEvent['kind']>(w: Wire, kind: K) =>
  w.agentEvents.filter((e): e is Extract<AgentEvent, { kind: K }> => e.kind === kind);

function up(opts: Parameters<typeof setup>[0] = {}) {
  const s = setup(opts);
  login(s.wire);
  return s;
}
/** A session with a pool of 4 TCP ports for IN1. */
function pooled() {
  const s = up();
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  return s;
}
/** A second agent for alice on a gateway with its own options. */
function aliceOn(gw: GatewayControl): Wire {
  const agent = aliceAgent();
  const w = new Wire(agent, gw);
  login(w);
  return w;
}

// ---------------------------------------------------------------------------------------------
// RESERVE and the pools

t.test('RESERVE at DNS time fills the pool of 4 ports, decided and logged', async (t) => {
  const { agent, gw, dir, wire } = up();
  const before = wire.toGateway.length;
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(wire.toGateway.length - before, 1, 'one RESERVE');
  const r = ev(wire, 'reserved')[0]!;
  t.equal(r.ports.length, 4);
  t.equal(agent.poolSize(IN1, 6), 4);
  t.equal(gw.stats().reservations, 4);
  t.match(dir.reserveCalls[0], { user: 'alice', group: 'sales', inName: IN1, proto: 6, count: 4 });
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'decision' && e.step === 'reserve'),
    { user: 'alice', group: 'sales', in: IN1, en: '203.0.113.2:61000', decision: 'allow' },
  );
});

t.test('a full pool sends no RESERVE', async (t) => {
  const { agent } = pooled();
  t.same(agent.reserve(IN1, 6, T0).send, []);
});

t.test('flows take pooled ports with zero round trips; below poolLow one top-up RESERVE', async (t) => {
  const { agent } = pooled();
  const a = agent.takePort(IN1, 6, T0);
  const b = agent.takePort(IN1, 6, T0);
  t.ok(a.port && b.port);
  t.equal(a.send.length + b.send.length, 0, 'first two takes send nothing');
  const c = agent.takePort(IN1, 6, T0);
  t.ok(c.port);
  t.equal(c.send.length, 1, 'top-up RESERVE');
  t.match(decode(c.send[0]!.data), { type: 'RESERVE', count: 3 });
});

t.test('each pooled port has its own serial and the keys of its row on the gateway', async (t) => {
  const { agent, gw } = pooled();
  const a = agent.takePort(IN1, 6, T0);
  const b = agent.takePort(IN1, 6, T0);
  t.not(a.port!.serial, b.port!.serial);
  t.same(a.port!.keys, gw.reservations.get(6, a.port!.t)!.keys);
});

t.test(
  'first connection: RESERVE in flight, empty pool → held packet waits for RESERVED (1 RTT)',
  async (t) => {
    const { agent, wire } = up();
    const first = agent.takePort(IN1, 17, T0);
    t.equal(first.port, null, 'nothing pre-reserved');
    t.equal(first.send.length, 1, 'RESERVE goes out at once');
    wire.run(first, T0);
    t.equal(ev(wire, 'reserved').length, 1);
    t.ok(agent.takePort(IN1, 17, T0).port, 'after RESERVED a port is available');
  },
);

t.test('a row holds the session, the user, the IN and its PIN', async (t) => {
  const { agent, gw } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  t.match(gw.reservations.get(6, p.t), {
    proto: 6,
    t: p.t,
    serial: p.serial,
    sessionId: agent.session,
    user: 'alice',
    group: 'sales',
    inName: IN1,
    pin: '10.0.0.11',
    en: { addr: '203.0.113.2', port: 61000 },
  });
});

// ---------------------------------------------------------------------------------------------
// Decisions

t.test('RESERVE for an IN of another group is refused (not-in-group), with a decision event', async (t) => {
  const { agent, wire } = up();
  wire.run(agent.reserve(IN2, 6, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { inName: IN2, reason: 'not-in-group' });
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'decision' && e.step === 'reserve'),
    { in: IN2, decision: 'deny', reason: 'not-in-group', user: 'alice' },
  );
});

t.test('RESERVE for unknown INs is refused (unknown-in) and reserves nothing', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve('nothere.corp.example', 6, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { reason: 'unknown-in' });
  for (let i = 0; i < 70; i++) wire.run(agent.reserve(`h${i}.corp.example`, 6, T0), T0);
  t.equal(gw.stats().reservations, 0, 'unknown INs reserve nothing');
});

t.test('RESERVE beyond the free ports is refused (no-ports) and reserves nothing', async (t) => {
  const { agent, dir, gw, wire } = up();
  dir.free = [40000, 40001];
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { reason: 'no-ports' });
  t.equal(gw.stats().reservations, 0);
});

t.test('RESERVE beyond maxReservationsPerSession is refused (rate-limited)', async (t) => {
  const { dir } = setup();
  dir.hosts.set('many.corp.example', 'sales');
  const w2 = aliceOn(new GatewayControl({ policy: dir, maxReservationsPerSession: 6 }));
  w2.run(w2.agent.reserve(IN1, 6, T0), T0);
  w2.run(w2.agent.reserve('many.corp.example', 6, T0), T0);
  t.match(ev(w2, 'reserve-failed')[0], { reason: 'rate-limited' });
});

t.test('removal from the group in LDAP takes effect on the next RESERVE; the session stays', async (t) => {
  const { dir, gw, wire, agent } = up();
  dir.users.get('alice')!.groups = [];
  wire.run(agent.reserve(IN1, 17, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { reason: 'not-in-group' });
  t.equal(gw.stats().sessions, 1);
});

t.test('a throwing mayReach becomes an internal refusal and a policy-error event', async (t) => {
  const { agent, dir, wire } = up();
  dir.mayReach = () => {
    throw new Error('ldap down');
  };
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { reason: 'internal' });
  t.ok(wire.gatewayEvents.some((e) => e.kind === 'policy-error' && e.detail === 'ldap down'));
});

// ---------------------------------------------------------------------------------------------
// A pool that misbehaves

t.test('ports the pool hands out beyond the count asked go back', async (t) => {
  const { agent, gw, dir, wire } = up();
  dir.reservePorts = (req) => {
    dir.reserveCalls.push(req);
    return { ports: [45000, 45001, 45002, 45003, 45004, 45005] }; // 6 for a request of 4
  };
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(gw.stats().reservations, 4);
  t.same(dir.released.sort(), [45004, 45005], 'extras returned');
});

t.test('a busy or repeated port from the pool counts as no-ports; the distinct ones go back', async (t) => {
  const { agent, gw, dir, wire } = up();
  dir.reservePorts = () => ({ ports: [45000, 45001, 45002, 45003] });
  wire.run(agent.reserve(IN1, 6, T0), T0);
  dir.reservePorts = () => ({ ports: [45000, 46000, 46000] }); // busy + duplicate
  wire.run(agent.reserve(IN1, 17, T0), T0);
  t.equal(gw.stats().reservations, 4, 'nothing more reserved');
  t.match(ev(wire, 'reserve-failed')[0], { proto: 17, inName: IN1, reason: 'no-ports' });
  t.same(dir.released.sort(), [45000, 46000], 'duplicate answer: the distinct ports go back');
});

t.test('an exhausted pool gets back the rows past their lifetime before refusing', async (t) => {
  const { agent, gw, dir, wire } = up();
  dir.free = [40000, 40001, 40002, 40003];
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(gw.stats().reservations, 4);
  // the lifetime (120 s) is over but no poll() ran yet: the next RESERVE must not be refused
  const late = T0 + 120_001;
  wire.run(agent.reserve(IN1, 17, late), late);
  t.equal(ev(wire, 'reserved').length, 2, 'the UDP pool was filled from the expired ports');
  t.equal(gw.stats().reservations, 4);
  t.ok([...gw.reservations.values()].every((r) => r.proto === 17));
});

// ---------------------------------------------------------------------------------------------
// Binding

t.test(
  'in-band binding: gateway learns GHR:m from the first packet, BOUND reaches the agent, ACKed',
  async (t) => {
    const { agent, gw, wire } = pooled();
    const p = agent.takePort(IN1, 6, T0).port!;
    const r = gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 34567, d: 80 }, T0 + 10);
    t.match(
      r.events.find((e) => e.kind === 'mapping'),
      { record: { t: p.t, binding: { ghr: '203.0.113.2', m: 34567 }, mapping: { d: 80 } } },
    );
    wire.fromGateway(r, T0 + 10);
    t.match(ev(wire, 'bound')[0], { t: p.t, ghr: '203.0.113.2', m: 34567, d: 80 });
    t.equal(gw.poll(T0 + 300).send.length, 0, 'ACKed: no retransmission');
  },
);

t.test('an in-band binding for a port no row holds is dropped', async (t) => {
  const { gw } = up();
  t.match(gw.onInbandBinding({ proto: 6, t: 1, ghr: '1.2.3.4', m: 1, d: 80 }, T0).events[0], {
    reason: 'unknown-reservation',
  });
});

t.test('BOUND is retransmitted until ACKed; a duplicate is re-ACKed, reported once', async (t) => {
  const { agent, gw, wire } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  let dropAcks = true;
  wire.lose = (dir, d) => dropAcks && dir === 'up' && d[3] === 0x1f;
  wire.fromGateway(gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 1000, d: 443 }, T0), T0);
  const again = gw.poll(T0 + 250);
  t.equal(again.send.length, 1, 'retransmitted after 250 ms');
  dropAcks = false;
  wire.fromGateway(again, T0 + 250);
  t.equal(ev(wire, 'bound').length, 1, 'reported once');
  t.equal(gw.poll(T0 + 10_000).send.length, 0, 'ACK stopped retransmission');
});

t.test('a BOUND never ACKed is sent 4 times in all, then reported undelivered', async (t) => {
  const { agent, gw, wire } = pooled();
  const q = agent.takePort(IN1, 6, T0).port!;
  wire.lose = () => true;
  wire.fromGateway(gw.onInbandBinding({ proto: 6, t: q.t, ghr: '203.0.113.2', m: 1001, d: 443 }, T0), T0);
  let n = 0;
  let undelivered = false;
  for (let now = T0; now < T0 + 5000; now += 50) {
    const r = gw.poll(now);
    n += r.send.length;
    undelivered ||= r.events.some((e) => e.kind === 'undelivered');
  }
  t.equal(n, 3, '3 retransmissions (4 transmissions in all)');
  t.ok(undelivered);
});

t.test('directory change between RESERVE and the first packet: flow refused, agent told', async (t) => {
  const { agent, gw, dir, wire } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  dir.hosts.set(IN1, 'dev'); // IN moved to another group
  const r = gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 1, d: 80 }, T0);
  t.match(r.events, [
    { kind: 'decision', decision: 'deny', reason: 'not-in-group' },
    { kind: 'reservation-ended', cause: 'policy' },
  ]);
  t.equal(gw.reservations.get(6, p.t), undefined);
  wire.fromGateway(r, T0);
  t.match(ev(wire, 'gateway-error')[0], { reason: 'not-in-group' });
});

// Explicit mode (docs/protocol.md §8.2): optional for gateways, implemented by both machines.

/** A session with a UDP pool and one port taken from it. */
function udpFlow() {
  const s = up();
  s.wire.run(s.agent.reserve(IN1, 17, T0), T0);
  return { ...s, p: s.agent.takePort(IN1, 17, T0).port! };
}

t.test('explicit mode: BIND from the flow socket to GGR:t reports the mapping HR chose', async (t) => {
  const { agent, wire, p } = udpFlow();
  const bind = agent.bind(17, p.t, 5353, T0);
  t.same(bind.send[0]!.dest, { via: 'flow', proto: 17, s: 5353, t: p.t });
  // the probe crosses HR on the flow's own mapping: the gateway sees another source port
  wire.from = { addr: '203.0.113.2', port: 62001 };
  wire.run(bind, T0);
  wire.from = { addr: '203.0.113.2', port: 61000 };
  t.match(ev(wire, 'bound')[0], { t: p.t, ghr: '203.0.113.2', m: 62001, d: 0 });
  t.equal(
    wire.gatewayEvents.filter((e) => e.kind === 'peer-moved').length,
    0,
    'a probe does not move the control peer',
  );
});

t.test('explicit mode: MAP after BOUND maps the row for the mapped lifetime', async (t) => {
  const { agent, gw, wire, p } = udpFlow();
  wire.from = { addr: '203.0.113.2', port: 62001 };
  wire.run(agent.bind(17, p.t, 5353, T0), T0);
  wire.from = { addr: '203.0.113.2', port: 61000 };
  const bound = ev(wire, 'bound')[0]!;
  wire.run(agent.map(17, p.t, 53, bound.ghr, bound.m, T0), T0);
  t.match(ev(wire, 'mapped')[0], { t: p.t, d: 53, lifetime: 300 });
  t.match(gw.reservations.get(17, p.t), { mapping: { d: 53 }, binding: { m: 62001 } });
});

t.test('explicit mode: MAP with a binding the gateway did not see is refused (not-bound)', async (t) => {
  const { agent, wire } = udpFlow();
  const q = agent.takePort(IN1, 17, T0).port!;
  wire.run(agent.map(17, q.t, 53, '203.0.113.2', 1, T0), T0);
  t.match(ev(wire, 'request-failed')[0], { type: 'MAP', reason: 'not-bound' });
});

t.test('explicit mode: a BIND that reached another port than its t is refused', async (t) => {
  const { agent, gw, p } = udpFlow();
  const r = gw.handleDatagram(
    agent.bind(17, p.t, 5000, T0).send[0]!.data,
    { addr: '203.0.113.2', port: 1 },
    T0,
    39999,
  );
  t.match(decode(r.send[0]!.data), { type: 'ERROR', reason: 'unknown-reservation' });
});

t.test('BIND probe for a TCP reservation is refused (TCP binds in-band)', async (t) => {
  const { agent, gw } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  const r = gw.handleDatagram(
    agent.bind(6, p.t, 5000, T0).send[0]!.data,
    { addr: '203.0.113.2', port: 9 },
    T0,
    p.t,
  );
  t.match(decode(r.send[0]!.data), { type: 'ERROR', reason: 'unknown-reservation' });
  t.equal(gw.reservations.get(6, p.t)!.binding, undefined);
});

// ---------------------------------------------------------------------------------------------
// RELEASE and lifetimes

t.test('RELEASE of a port ends its row and gives the port back to the pool', async (t) => {
  const { agent, gw, dir, wire } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  wire.run(agent.release(6, p.t, T0), T0);
  t.match(ev(wire, 'released')[0], { t: p.t });
  t.equal(gw.reservations.get(6, p.t), undefined);
  t.ok(dir.released.includes(p.t));
  t.match(
    wire.gatewayEvents.filter((e) => e.kind === 'reservation-ended'),
    [{ t: p.t, reason: 'released', cause: 'release' }],
  );
});

t.test('RELEASE of a port the session no longer holds is acknowledged too (idempotent)', async (t) => {
  const { agent, wire } = pooled();
  const p = agent.takePort(IN1, 6, T0).port!;
  wire.run(agent.release(6, p.t, T0), T0);
  wire.run(agent.release(6, p.t, T0), T0);
  t.equal(ev(wire, 'released').length, 2);
});

t.test('logout ends the session and every row of it', async (t) => {
  const { agent, gw, wire } = pooled();
  wire.run(agent.logout(T0), T0);
  t.equal(gw.stats().sessions, 0);
  t.equal(gw.stats().reservations, 0);
  const ended = wire.gatewayEvents.filter((e) => e.kind === 'reservation-ended');
  t.equal(ended.length, 4);
  t.ok(
    ended.every((e) => e.cause === 'session'),
    'each row ended with its session',
  );
});

t.test('unused reservation expires on the gateway without keepalive', async (t) => {
  const { gw } = pooled();
  const r = gw.poll(T0 + 120_000);
  t.equal(r.events.filter((e) => e.kind === 'reservation-ended').length, 4);
  t.equal(gw.stats().reservations, 0);
});

t.test('a bound row outlives the unused lifetime: it lives the mapped lifetime', async (t) => {
  const { dir } = setup();
  const gw = new GatewayControl({ policy: dir, sessionIdleSec: 100_000 }); // no idle end here
  const wire = aliceOn(gw);
  wire.run(wire.agent.reserve(IN1, 6, T0), T0);
  const p = wire.agent.takePort(IN1, 6, T0).port!;
  gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 34567, d: 80 }, T0);
  const ended = gw.poll(T0 + 120_000).events.flatMap((e) => (e.kind === 'reservation-ended' ? [e.t] : []));
  t.equal(ended.length, 3, 'the three unused rows ended');
  t.notOk(ended.includes(p.t), 'not the bound one');
  t.ok(gw.reservations.get(6, p.t), 'the bound row is still there');
  t.equal(dir.released.length, 3, 'three ports back in the pool');
  t.match(gw.poll(T0 + 300_000).events, [
    { kind: 'reservation-ended', t: p.t, reason: 'expired', cause: 'lifetime' },
  ]);
});

// ---------------------------------------------------------------------------------------------
// FTP alias

/** A session whose TCP control connection ctrl is bound in-band to d = 21. */
function ftpControl(opts: Parameters<typeof setup>[0] = {}) {
  const s = up(opts);
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  const ctrl = s.agent.takePort(IN1, 6, T0).port!;
  s.wire.fromGateway(
    s.gw.onInbandBinding({ proto: 6, t: ctrl.t, ghr: '203.0.113.2', m: 4000, d: 21 }, T0),
    T0,
  );
  return { ...s, ctrl };
}

t.test('FTP alias: data port reserved in the session, agent gets keys equal to the gateway', async (t) => {
  const { gw, wire, ctrl } = ftpControl();
  const r = gw.ftpAlias({ ctrlT: ctrl.t, aliasPort: 50123 }, T0);
  t.ok(r.record);
  wire.fromGateway(r, T0);
  const alias = ev(wire, 'ftp-alias')[0]!;
  t.match(alias, { ctrlT: ctrl.t, aliasPort: 50123, port: { t: r.record!.t } });
  t.same(alias.port.keys, r.record!.keys);
  t.equal(gw.poll(T0 + 1000).send.length, 0, 'ACKed');
});

t.test('FTP alias for a control connection no row holds reserves nothing', async (t) => {
  const { gw } = up();
  t.equal(gw.ftpAlias({ ctrlT: 1, aliasPort: 5 }, T0).record, undefined, 'unknown control flow');
});

t.test('a throwing releasePorts does not crash poll()', async (t) => {
  const { gw, dir } = pooled();
  dir.releasePorts = () => {
    throw new Error('pool bug');
  };
  t.doesNotThrow(() => gw.poll(T0 + 10_000_000));
});

t.test(
  'a burst: with 40 connections waiting, the agent asks for 40 ports at once (16 per RESERVE)',
  async (t) => {
    const { agent, wire } = up();
    const r = agent.reserve(IN1, 6, T0, 40);
    t.same(
      r.send.map((o) => (decode(o.data) as { count: number }).count),
      [16, 16, 8],
    );
    t.same(agent.reserve(IN1, 6, T0, 40).send, [], 'nothing more while those are in flight');
    wire.run(r, T0);
    t.equal(agent.poolSize(IN1, 6), 40);
    t.same(agent.reserve(IN1, 6, T0, 40).send, [], 'the pool holds them');
  },
);

t.test('a session may not hold more ports than its limit: refused with the numbers', async (t) => {
  const { dir } = setup();
  const gw = new GatewayControl({ policy: dir, maxReservationsPerSession: 20 });
  const w = aliceOn(gw);
  w.run(w.agent.reserve(IN1, 6, T0, 32), T0);
  t.equal(w.agent.poolSize(IN1, 6), 16, 'the first 16 granted');
  t.match(ev(w, 'reserve-failed'), [
    {
      reason: 'rate-limited',
      text: 'this session holds 16 ports, the most one session may hold is 20; close some connections',
    },
  ]);
  t.ok(w.gatewayEvents.some((e) => e.kind === 'limit' && e.held === 16 && e.max === 20));
});

t.test('a burst: at most 16 requests unanswered at once, the rest leave as answers come', async (t) => {
  const { agent, gw, wire } = pooled();
  // 40 RELEASEs at once (any request would do): 16 leave, 24 wait in order
  const ports = [...gw.reservations.values()].map((r) => r.t);
  const results = Array.from({ length: 40 }, (_, i) => agent.release(6, ports[i % ports.length]!, T0));
  t.equal(
    results.reduce((n, r) => n + r.send.length, 0),
    16,
    'only 16 on the wire before any answer',
  );
  const before = wire.toGateway.length;
  for (const r of results) wire.run(r, T0);
  t.equal(wire.toGateway.length - before, 40, 'each answer let a waiting request go: all 40 sent, once each');
  t.notOk(
    wire.agentEvents.some((e) => e.kind === 'request-failed'),
    'none failed',
  );
});
