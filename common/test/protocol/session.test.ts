import t from 'tap';
import {
  decode,
  encode,
  GatewayControl,
  sealMessage,
  type AgentEvent,
  type SessionMessage,
} from '../../src/protocol/index.ts';
import { ALICE_SECRET, BOB_SECRET, GK1, T0, login, setup, Wire } from './harness.ts';
import { AgentControl } from '../../src/protocol/index.ts';

const IN1 = 'intra1.corp.example';
const IN2 = 'intra2.corp.example';
const ev = <K extends AgentEvent['kind']>(w: Wire, kind: K) =>
  w.agentEvents.filter((e): e is Extract<AgentEvent, { kind: K }> => e.kind === kind);

function up() {
  const s = setup();
  login(s.wire);
  return s;
}

t.test('RESERVE at DNS time fills the pool; later flows take ports with zero round trips', async (t) => {
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
  // second reserve call with a full pool sends nothing
  t.same(agent.reserve(IN1, 6, T0).send, []);
  // take 2 ports: no datagram (0 RTT); the third take drops below poolLow → one background top-up
  const a = agent.takePort(IN1, 6, T0);
  const b = agent.takePort(IN1, 6, T0);
  t.ok(a.port && b.port);
  t.equal(a.send.length + b.send.length, 0, 'first two takes send nothing');
  const c = agent.takePort(IN1, 6, T0);
  t.ok(c.port);
  t.equal(c.send.length, 1, 'top-up RESERVE');
  t.match(decode(c.send[0]!.data), { type: 'RESERVE', count: 3 });
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

t.test(
  'reservation decisions: not-in-group, unknown-in, no-ports, rate-limited, member removed',
  async (t) => {
    const { agent, dir, gw, wire } = up();
    wire.run(agent.reserve(IN2, 6, T0), T0);
    t.match(ev(wire, 'reserve-failed')[0], { inName: IN2, reason: 'not-in-group' });
    t.match(
      wire.gatewayEvents.find((e) => e.kind === 'decision' && e.step === 'reserve'),
      { in: IN2, decision: 'deny', reason: 'not-in-group', user: 'alice' },
    );
    wire.run(agent.reserve('nothere.corp.example', 6, T0), T0);
    t.match(ev(wire, 'reserve-failed')[1], { reason: 'unknown-in' });
    dir.free = [40000, 40001];
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.match(ev(wire, 'reserve-failed')[2], { reason: 'no-ports' });
    t.equal(gw.stats().reservations, 0);
    dir.free = Array.from({ length: 600 }, (_, i) => 41000 + i);
    // 256 reservations per session at most
    for (let i = 0; i < 70; i++) wire.run(agent.reserve(`h${i}.corp.example`, 6, T0), T0);
    t.equal(gw.stats().reservations, 0, 'unknown INs reserve nothing');
    dir.hosts.set('many.corp.example', 'sales');
    const gw2 = new GatewayControl({ policy: dir, maxReservationsPerSession: 6 });
    const a2 = new AgentControl({
      user: 'alice',
      userSecret: ALICE_SECRET,
      group: 'sales',
      groupKey: { version: 1, key: GK1 },
    });
    const w2 = new Wire(a2, gw2);
    login(w2);
    w2.run(a2.reserve(IN1, 6, T0), T0);
    w2.run(a2.reserve('many.corp.example', 6, T0), T0);
    t.match(ev(w2, 'reserve-failed')[0], { reason: 'rate-limited' });
    // removal from the group in LDAP takes effect on the next reservation
    dir.users.get('alice')!.groups = [];
    w2.run(a2.reserve(IN1, 17, T0), T0);
    t.match(ev(w2, 'reserve-failed')[1], { reason: 'not-in-group' });
    t.equal(gw.stats().sessions, 1);
  },
);

t.test(
  'in-band binding: gateway learns GHR:m from the first packet, BOUND reaches the agent, ACKed',
  async (t) => {
    const { agent, gw, wire } = up();
    wire.run(agent.reserve(IN1, 6, T0), T0);
    const p = agent.takePort(IN1, 6, T0).port!;
    const r = gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 34567, d: 80 }, T0 + 10);
    t.match(
      r.events.find((e) => e.kind === 'mapping'),
      { record: { t: p.t, binding: { ghr: '203.0.113.2', m: 34567 }, mapping: { d: 80 } } },
    );
    wire.fromGateway(r, T0 + 10);
    t.match(ev(wire, 'bound')[0], { t: p.t, ghr: '203.0.113.2', m: 34567, d: 80 });
    t.equal(gw.poll(T0 + 300).send.length, 0, 'ACKed: no retransmission');
    // unknown port: dropped
    t.match(gw.onInbandBinding({ proto: 6, t: 1, ghr: '1.2.3.4', m: 1, d: 80 }, T0).events[0], {
      reason: 'unknown-reservation',
    });
  },
);

t.test('BOUND is retransmitted until ACKed; a duplicate is re-ACKed, reported once', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
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
  // undelivered after 4 tries
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

t.test('explicit 3-step mode: BIND from the flow socket to GGR:t, then MAP', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 17, T0), T0);
  const p = agent.takePort(IN1, 17, T0).port!;
  const bind = agent.bind(17, p.t, 5353, T0);
  t.same(bind.send[0]!.dest, { via: 'flow', proto: 17, s: 5353, t: p.t });
  // the probe crosses HR on the flow's own mapping: the gateway sees another source port
  wire.from = { addr: '203.0.113.2', port: 62001 };
  wire.run(bind, T0);
  wire.from = { addr: '203.0.113.2', port: 61000 };
  const bound = ev(wire, 'bound')[0]!;
  t.match(bound, { t: p.t, ghr: '203.0.113.2', m: 62001, d: 0 });
  t.equal(
    wire.gatewayEvents.filter((e) => e.kind === 'peer-moved').length,
    0,
    'a probe does not move the control peer',
  );
  wire.run(agent.map(17, p.t, 53, bound.ghr, bound.m, T0), T0);
  t.match(ev(wire, 'mapped')[0], { t: p.t, d: 53, lifetime: 300 });
  t.match(gw.reservations.get(17, p.t), { mapping: { d: 53 }, binding: { m: 62001 } });
  // MAP with a binding the gateway did not see → not-bound
  const q = agent.takePort(IN1, 17, T0).port!;
  wire.run(agent.map(17, q.t, 53, '203.0.113.2', 1, T0), T0);
  t.match(ev(wire, 'request-failed')[0], { type: 'MAP', reason: 'not-bound' });
  // BIND to a port that is not this reservation's
  const r = gw.handleDatagram(
    agent.bind(17, q.t, 5000, T0).send[0]!.data,
    { addr: '203.0.113.2', port: 1 },
    T0,
    39999,
  );
  t.match(decode(r.send[0]!.data), { type: 'ERROR', reason: 'unknown-reservation' });
});

t.test('replayed message → replay; duplicate answered from the cache; tampered MAC → bad-mac', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const reserve = wire.toGateway.at(-1)!;
  const reserved = wire.toAgent.at(-1)!;
  const dup = gw.handleDatagram(reserve, wire.from, T0 + 100);
  t.ok(dup.send[0]!.data.equals(reserved), 'duplicate → the very same RESERVED');
  t.equal(gw.stats().reservations, 4, 'nothing reserved twice');
  // push the window: 70 keepalives, then the old RESERVE is a replay
  for (let i = 0; i < 70; i++) wire.run(agent.keepalive(T0 + 200 + i), T0 + 200 + i);
  const rep = gw.handleDatagram(reserve, wire.from, T0 + 1000);
  t.match(decode(rep.send[0]!.data), { type: 'ERROR', reason: 'replay' });
  t.ok(rep.events.some((e) => e.kind === 'dropped' && e.reason === 'replay'));
  t.equal(gw.stats().reservations, 4);
  // tampered MAC
  const orig = agent.keepalive(T0 + 2000).send[0]!.data;
  const ka = Buffer.from(orig);
  ka[ka.length - 1]! ^= 1;
  const bad = gw.handleDatagram(ka, wire.from, T0 + 2000);
  t.match(decode(bad.send[0]!.data), { type: 'ERROR', reason: 'bad-mac' });
  // tampered header/body (same MAC) → bad-mac too
  const ka2 = Buffer.from(orig);
  ka2[12]! ^= 1;
  t.match(decode(gw.handleDatagram(ka2, wire.from, T0 + 2001).send[0]!.data), { reason: 'bad-mac' });
  // from another address: no answer at all (no reflection), but counted
  const ka3 = Buffer.from(ka);
  const r3 = gw.handleDatagram(ka3, { addr: '192.0.2.66', port: 4 }, T0 + 2002);
  t.equal(r3.send.length, 0);
  t.ok(r3.events.some((e) => e.kind === 'dropped' && e.reason === 'bad-mac'));
});

t.test('reordering inside the window is accepted; stale timestamps are refused', async (t) => {
  const { agent, gw, wire } = up();
  const a = agent.reserve(IN1, 6, T0).send[0]!.data;
  const b = agent.reserve(IN1, 17, T0).send[0]!.data;
  const rb = gw.handleDatagram(b, wire.from, T0);
  const ra = gw.handleDatagram(a, wire.from, T0);
  t.match(decode(rb.send[0]!.data), { type: 'RESERVED', proto: 17 });
  t.match(
    decode(ra.send[0]!.data),
    { type: 'RESERVED', proto: 6 },
    'older seq delivered later still accepted',
  );
  const late = agent.keepalive(T0).send[0]!.data;
  const r = gw.handleDatagram(late, wire.from, T0 + 61_000);
  t.match(decode(r.send[0]!.data), { type: 'ERROR', reason: 'stale-timestamp' });
});

t.test('agent: loss → retransmit with backoff, same bytes; timeout after 4 tries', async (t) => {
  const { agent, wire } = up();
  const first = agent.reserve(IN1, 6, T0);
  const sent = [first.send[0]!.data];
  t.equal(agent.nextDeadline(), T0 + 250);
  for (const at of [250, 750, 1750]) {
    const r = agent.poll(T0 + at);
    t.equal(r.send.length, 1, `retransmission at +${at} ms`);
    sent.push(r.send[0]!.data);
  }
  t.ok(
    sent.every((s) => s.equals(sent[0]!)),
    'identical bytes (same seq)',
  );
  const end = agent.poll(T0 + 3750);
  t.match(end.events, [{ kind: 'reserve-failed', reason: 'timeout' }]);
  // the gateway answers a late duplicate from its cache and the agent ignores the stray answer
  wire.run({ send: [{ dest: { via: 'control' }, data: sent[0]! }], events: [] }, T0 + 3800);
  t.ok(wire.agentEvents.some((e) => e.kind === 'dropped' && e.reason === 'unsolicited'));
});

t.test('handshake loss: HELLO and AUTH retransmitted, session comes up once', async (t) => {
  const { agent, gw, wire } = setup();
  let drops = 2;
  wire.lose = () => drops-- > 0; // lose the first HELLO and the second (a COOKIE) ...
  wire.run(agent.login(T0), T0);
  t.equal(agent.state, 'hello');
  wire.run(agent.poll(T0 + 250), T0 + 250); // HELLO again, COOKIE lost
  wire.run(agent.poll(T0 + 750), T0 + 750);
  t.equal(agent.state, 'up');
  t.equal(gw.stats().sessions, 1);
  // AUTH_OK lost: the retransmitted AUTH gets the cached AUTH_OK, one session
  const s2 = setup();
  s2.wire.lose = (dir, d) =>
    dir === 'down' && d[3] === 0x04 && s2.wire.toAgent.filter((x) => x[3] === 0x04).length === 1;
  s2.wire.run(s2.agent.login(T0), T0);
  t.equal(s2.agent.state, 'auth');
  s2.wire.run(s2.agent.poll(T0 + 250), T0 + 250);
  t.equal(s2.agent.state, 'up');
  t.equal(s2.gw.stats().sessions, 1);
  // no gateway at all: failed after 4 HELLOs
  const s3 = setup();
  s3.wire.lose = () => true;
  s3.wire.run(s3.agent.login(T0), T0);
  let hellos = 1;
  for (let now = T0; now <= T0 + 4000; now += 50) {
    const r = s3.agent.poll(now);
    hellos += r.send.length;
    s3.wire.agentEvents.push(...r.events);
  }
  t.equal(hellos, 4);
  t.equal(s3.agent.state, 'failed');
});

t.test('keepalive renews reservations; idle session and unused reservations expire', async (t) => {
  const { agent, gw, dir, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(agent.nextDeadline(), T0 + 25_000, 'next keepalive');
  for (let now = T0 + 25_000; now <= T0 + 200_000; now += 25_000) {
    wire.run(agent.poll(now), now);
    wire.fromGateway(gw.poll(now), now);
  }
  t.equal(gw.stats().reservations, 4, 'kept alive');
  t.equal(agent.poolSize(IN1, 6), 4);
  // agent disappears: reservations expire, then the session
  const r = gw.poll(T0 + 200_000 + 121_000);
  t.equal(gw.stats().sessions, 0);
  t.ok(r.events.some((e) => e.kind === 'session-down' && e.reason === 'idle'));
  t.equal(dir.released.length, 4, 'ports back in the pool');
});

t.test('unused reservation expires on the gateway without keepalive', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const r = gw.poll(T0 + 120_000);
  t.equal(r.events.filter((e) => e.kind === 'reservation-ended').length, 4);
  t.equal(gw.stats().reservations, 0);
});

t.test('keepalive timeout ends the session on the agent', async (t) => {
  const { agent, wire } = up();
  wire.lose = () => true;
  const events: AgentEvent[] = [];
  for (let now = T0 + 25_000; now < T0 + 40_000; now += 50) events.push(...agent.poll(now).events);
  t.match(events, [{ kind: 'session-down', reason: 'timeout' }]);
  t.equal(agent.state, 'idle');
});

t.test('RELEASE of a port and of the session', async (t) => {
  const { agent, gw, dir, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const p = agent.takePort(IN1, 6, T0).port!;
  wire.run(agent.release(6, p.t, T0), T0);
  t.match(ev(wire, 'released')[0], { t: p.t });
  t.equal(gw.reservations.get(6, p.t), undefined);
  t.ok(dir.released.includes(p.t));
  wire.run(agent.release(6, p.t, T0), T0); // idempotent
  t.equal(ev(wire, 'released').length, 2);
  wire.run(agent.logout(T0), T0);
  t.equal(gw.stats().sessions, 0);
  t.equal(gw.stats().reservations, 0);
});

t.test('gateway restart: unknown-session makes the agent log in again', async (t) => {
  const { agent, dir, wire } = up();
  wire.gw = new GatewayControl({ policy: dir });
  wire.run(agent.keepalive(T0 + 1000), T0 + 1000);
  t.ok(wire.agentEvents.some((e) => e.kind === 'session-down' && e.reason === 'unknown-session'));
  t.equal(agent.state, 'up');
  t.equal(wire.gw.stats().sessions, 1);
});

t.test('NAT rebinding of the control flow: the gateway follows the authenticated source', async (t) => {
  const { agent, gw, wire } = up();
  wire.from = { addr: '203.0.113.2', port: 50000 };
  wire.run(agent.keepalive(T0 + 10), T0 + 10);
  t.ok(wire.gatewayEvents.some((e) => e.kind === 'peer-moved'));
  wire.run(agent.reserve(IN1, 6, T0 + 20), T0 + 20);
  t.equal(ev(wire, 'reserved').length, 1);
  t.equal(gw.stats().sessions, 1);
});

t.test('FTP alias: data port reserved in the session, agent gets keys equal to the gateway', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const ctrl = agent.takePort(IN1, 6, T0).port!;
  wire.fromGateway(gw.onInbandBinding({ proto: 6, t: ctrl.t, ghr: '203.0.113.2', m: 4000, d: 21 }, T0), T0);
  const r = gw.ftpAlias({ ctrlT: ctrl.t, aliasPort: 50123 }, T0);
  t.ok(r.record);
  wire.fromGateway(r, T0);
  const alias = ev(wire, 'ftp-alias')[0]!;
  t.match(alias, { ctrlT: ctrl.t, aliasPort: 50123, port: { t: r.record!.t } });
  t.same(alias.port.keys, r.record!.keys);
  t.equal(gw.poll(T0 + 1000).send.length, 0, 'ACKed');
  t.equal(gw.ftpAlias({ ctrlT: 1, aliasPort: 5 }, T0).record, undefined, 'unknown control flow');
});

const VIN1 = '198.19.224.7';
const VIN2 = '198.19.230.9';
const vinOf = (inName: string) => ({ [IN1]: VIN1, [IN2]: VIN2 })[inName];
const reservationRecords = (w: Wire) =>
  w.gatewayEvents.flatMap((e) => (e.kind === 'reservation' ? [e.record] : []));

t.test('RESERVE carries vinOf(inName); every reservation record of it carries that VIN', async (t) => {
  const asked: string[] = [];
  const { agent, gw, wire } = setup({
    vinOf: (n) => {
      asked.push(n);
      return vinOf(n);
    },
  });
  login(wire);
  const before = wire.toGateway.length;
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.same(asked, [IN1], 'vinOf asked for the IN being reserved');
  const sent = wire.toGateway.slice(before).map((b) => decode(b));
  t.equal(sent.length, 1);
  t.match(sent[0], { type: 'RESERVE', proto: 6, count: 4, vin: VIN1, inName: IN1 }, 'VIN on the wire');
  const recs = reservationRecords(wire);
  t.equal(recs.length, 4, 'one reservation event per port');
  for (const r of recs) t.equal(r.vin, VIN1, `record ${r.proto}/${r.t} carries the VIN`);
  const p = ev(wire, 'reserved')[0]!.ports[0]!;
  t.equal(gw.reservations.get(6, p.t)!.vin, VIN1, 'gw.reservations.get() has it too');

  // the UDP pool of the same IN: the same VIN
  wire.run(agent.reserve(IN1, 17, T0), T0);
  t.same(asked, [IN1, IN1]);
  t.equal(gw.reservations.get(17, ev(wire, 'reserved')[1]!.ports[0]!.t)!.vin, VIN1, 'UDP reservation of IN1');
  // the top-up RESERVE (from takePort) carries the VIN as well
  agent.takePort(IN1, 6, T0);
  agent.takePort(IN1, 6, T0);
  const topUp = agent.takePort(IN1, 6, T0);
  t.equal(topUp.send.length, 1);
  t.match(decode(topUp.send[0]!.data), { type: 'RESERVE', count: 3, vin: VIN1, inName: IN1 });
  wire.run(topUp, T0);
  t.ok(
    reservationRecords(wire).every((r) => r.vin === VIN1),
    'all reservations of IN1 carry its VIN',
  );

  // another IN (bob may reach intra2): its own VIN
  const bob = setup({ user: 'bob', secret: BOB_SECRET, group: 'dev', vinOf });
  login(bob.wire);
  bob.wire.run(bob.agent.reserve(IN2, 6, T0), T0);
  const bobRecs = reservationRecords(bob.wire);
  t.equal(bobRecs.length, 4);
  t.ok(
    bobRecs.every((r) => r.inName === IN2 && r.vin === VIN2),
    'records of IN2 carry VIN2',
  );
});

t.test('a wish made before login is sent after AUTH_OK with the VIN', async (t) => {
  const { agent, gw, wire } = setup({ vinOf });
  t.same(agent.reserve(IN1, 6, T0).send, [], 'no session yet: remembered');
  login(wire);
  const reserve = wire.toGateway.map((b) => decode(b)).find((m) => m.type === 'RESERVE');
  t.match(reserve, { type: 'RESERVE', vin: VIN1, inName: IN1 });
  const p = ev(wire, 'reserved')[0]!.ports[0]!;
  t.equal(gw.reservations.get(6, p.t)!.vin, VIN1);
});

t.test(
  'without vinOf (or when it gives none) the RESERVE says 0.0.0.0 and records have no vin',
  async (t) => {
    const { agent, gw, wire } = up();
    const before = wire.toGateway.length;
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.match(decode(wire.toGateway[before]!), { type: 'RESERVE', vin: '0.0.0.0', inName: IN1 });
    const recs = reservationRecords(wire);
    t.equal(recs.length, 4);
    for (const r of recs) t.notOk('vin' in r, `record ${r.t} has no vin property`);
    const ctrl = agent.takePort(IN1, 6, T0).port!;
    t.notOk('vin' in gw.reservations.get(6, ctrl.t)!);
    wire.fromGateway(gw.onInbandBinding({ proto: 6, t: ctrl.t, ghr: '203.0.113.2', m: 4000, d: 21 }, T0), T0);
    const alias = gw.ftpAlias({ ctrlT: ctrl.t, aliasPort: 50123 }, T0);
    t.ok(alias.record);
    t.notOk('vin' in alias.record!, 'an FTP data reservation has none either (the ALG leaves PASV alone)');

    const s2 = setup({ vinOf: () => undefined });
    login(s2.wire);
    const b2 = s2.wire.toGateway.length;
    s2.wire.run(s2.agent.reserve(IN1, 6, T0), T0);
    t.match(decode(s2.wire.toGateway[b2]!), { type: 'RESERVE', vin: '0.0.0.0' }, 'vinOf → undefined');
    t.ok(reservationRecords(s2.wire).every((r) => !('vin' in r)));
  },
);

t.test('an FTP data reservation inherits the VIN of its control reservation', async (t) => {
  const { agent, gw, wire } = setup({ vinOf });
  login(wire);
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const ctrl = agent.takePort(IN1, 6, T0).port!;
  wire.fromGateway(gw.onInbandBinding({ proto: 6, t: ctrl.t, ghr: '203.0.113.2', m: 4000, d: 21 }, T0), T0);
  const before = wire.gatewayEvents.length;
  const r = gw.ftpAlias({ ctrlT: ctrl.t, aliasPort: 50123 }, T0);
  t.equal(r.record?.vin, VIN1, 'returned record');
  t.equal(gw.reservations.get(6, r.record!.t)!.vin, VIN1, 'stored record');
  wire.fromGateway(r, T0);
  const evs = wire.gatewayEvents.slice(before).filter((e) => e.kind === 'reservation');
  t.equal(evs.length, 1);
  t.match(evs[0], { kind: 'reservation', record: { t: r.record!.t, aliasPort: 50123, vin: VIN1 } });
  t.equal(ev(wire, 'ftp-alias').length, 1, 'agent got FTP_ALIAS');
});

t.test('a vinOf giving no IPv4 address (or throwing) fails the reserve; nothing is sent', async (t) => {
  for (const bad of [
    () => '300.1.1.1',
    () => 'abc',
    () => '::1',
    (): string => {
      throw new Error('boom');
    },
  ]) {
    let answer: (inName: string) => string = bad;
    const { agent, gw, wire } = setup({ vinOf: (n) => answer(n) });
    login(wire);
    const r = agent.reserve(IN1, 6, T0);
    t.same(r.send, [], 'no RESERVE');
    t.match(r.events, [{ kind: 'reserve-failed', inName: IN1, proto: 6, reason: 'internal' }]);
    t.equal(gw.stats().reservations, 0);
    // no state was left behind: with a good VIN the same IN reserves at once
    answer = () => VIN1;
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.equal(agent.poolSize(IN1, 6), 4, 'pool filled once vinOf answers');
    t.ok(reservationRecords(wire).every((x) => x.vin === VIN1));
  }
  // the same on the re-login path (wishes sent after AUTH_OK): an event, not an exception
  const s = setup({ vinOf: () => 'abc' });
  s.agent.reserve(IN1, 6, T0);
  t.doesNotThrow(() => login(s.wire));
  t.equal(s.agent.state, 'up');
  t.match(ev(s.wire, 'reserve-failed'), [{ inName: IN1, reason: 'internal' }]);
});

t.test(
  'session messages from the wrong direction, unknown types, foreign sessions are dropped',
  async (t) => {
    const { agent, gw, wire } = up();
    // a RESERVED sent to the gateway (wrong direction), properly MACed with the EN key? cannot: we
    // forge one with the session id but a random key → bad-mac; unknown session id → unknown-session
    const m: SessionMessage = {
      type: 'KEEPALIVE',
      sessionId: Buffer.alloc(8, 9),
      seq: 1n,
      ack: 0n,
      timestamp: T0,
    };
    const r = gw.handleDatagram(sealMessage(encode(m), Buffer.alloc(32)), wire.from, T0);
    t.match(decode(r.send[0]!.data), { type: 'HANDSHAKE_ERROR', reason: 'unknown-session' });
    const r2 = gw.handleDatagram(
      encode({
        type: 'COOKIE',
        enNonce: Buffer.alloc(16),
        cookieTime: 1,
        cookie: Buffer.alloc(16),
        gwPub: Buffer.alloc(32),
      }),
      wire.from,
      T0,
    );
    t.equal(r2.send.length, 0);
    t.equal(gw.handleDatagram(Buffer.from('hello world'), wire.from, T0).send.length, 0);
    // an agent ignores a forged unknown-session that does not echo its session id
    const forged = gw.handleDatagram(
      sealMessage(encode({ ...m, sessionId: Buffer.alloc(8, 1) }), Buffer.alloc(32)),
      wire.from,
      T0,
    );
    const a = agent.handleDatagram(forged.send[0]!.data, T0);
    t.equal(agent.state, 'up');
    t.match(a.events, [{ kind: 'dropped' }]);
  },
);

t.test('a misbehaving port pool cannot leak or double-book ports', async (t) => {
  const { agent, gw, dir, wire } = up();
  dir.reservePorts = (req) => {
    dir.reserveCalls.push(req);
    return { ports: [45000, 45001, 45002, 45003, 45004, 45005] }; // 6 for a request of 4
  };
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(gw.stats().reservations, 4);
  t.same(dir.released.sort(), [45004, 45005], 'extras returned');
  dir.released = [];
  dir.reservePorts = () => ({ ports: [45000, 46000, 46000] }); // busy + duplicate
  wire.run(agent.reserve(IN1, 17, T0), T0);
  t.equal(gw.stats().reservations, 4, 'nothing more reserved');
  t.match(ev(wire, 'reserve-failed')[0], { proto: 17, inName: IN1, reason: 'no-ports' });
  t.same(dir.released.sort(), [45000, 46000], 'duplicate answer: the distinct ports go back');
});

t.test('directory change between RESERVE and the first packet: flow refused, agent told', async (t) => {
  const { agent, gw, dir, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const p = agent.takePort(IN1, 6, T0).port!;
  dir.hosts.set(IN1, 'dev'); // IN moved to another group
  const r = gw.onInbandBinding({ proto: 6, t: p.t, ghr: '203.0.113.2', m: 1, d: 80 }, T0);
  t.match(r.events, [
    { kind: 'decision', decision: 'deny', reason: 'not-in-group' },
    { kind: 'reservation-ended' },
  ]);
  t.equal(gw.reservations.get(6, p.t), undefined);
  wire.fromGateway(r, T0);
  t.match(ev(wire, 'gateway-error')[0], { reason: 'not-in-group' });
});

t.test('BIND probe for a TCP reservation is refused (TCP binds in-band)', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
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

t.test('state machines never throw on garbage, mutated or misdirected datagrams', async (t) => {
  const { agent, gw, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const seen = [...wire.toGateway, ...wire.toAgent];
  let n = 0;
  for (let i = 0; i < 20_000; i++) {
    const base = seen[i % seen.length]!;
    const buf = Buffer.from(base);
    if (i % 3 === 0) buf[Math.floor(Math.random() * buf.length)]! ^= 1 + Math.floor(Math.random() * 255);
    else if (i % 3 === 1)
      buf.fill(Math.floor(Math.random() * 256), 4 + Math.floor(Math.random() * (buf.length - 4)));
    const now = T0 + i;
    const g = gw.handleDatagram(
      buf,
      { addr: i % 2 ? '203.0.113.2' : '2001:db8::7', port: 61000 },
      now,
      i % 5 ? 4430 : 40000,
    );
    const a = agent.handleDatagram(buf, now);
    n += g.send.length + a.send.length;
  }
  t.ok(n >= 0, `no exception in 40k calls (${n} answers)`);
  t.equal(gw.stats().sessions, 1, 'still exactly one session');
  t.equal(agent.state, 'up');
});

t.test('timers: nextDeadline drives everything; absolute session lifetime; key erasure', async (t) => {
  const { dir } = setup();
  const gw = new GatewayControl({ policy: dir, sessionLifetimeSec: 600, sessionIdleSec: 100_000 });
  const agent = new AgentControl({
    user: 'alice',
    userSecret: ALICE_SECRET,
    group: 'sales',
    groupKey: { version: 1, key: GK1 },
  });
  const w = new Wire(agent, gw);
  t.equal(gw.nextDeadline(), null, 'idle gateway: nothing to do');
  login(w);
  t.equal(gw.nextDeadline(), T0 + 120_000, 'cookie cache / ephemeral key erasure first');
  // drive both sides only by their deadlines for 11 minutes
  let now = T0;
  let guard = 0;
  while (now < T0 + 660_000 && guard++ < 1000) {
    const next = Math.min(gw.nextDeadline() ?? Infinity, agent.nextDeadline() ?? Infinity);
    if (!Number.isFinite(next)) break;
    now = Math.max(now, next);
    w.fromGateway(gw.poll(now), now);
    w.run(agent.poll(now), now);
  }
  t.ok(
    w.gatewayEvents.some((e) => e.kind === 'session-down' && e.reason === 'expired'),
    'absolute lifetime ended it',
  );
  t.ok(gw.stats().ephemeralKeys <= 2, 'at most two epoch keys');
  gw.poll(now + 120_000);
  t.equal(gw.stats().ephemeralKeys, 0, 'no private key survives two epochs');
  // after expiry the agent's next keepalive meets unknown-session and logs in again
  t.ok(w.agentEvents.some((e) => e.kind === 'session-down' && e.reason === 'unknown-session'));
  t.equal(agent.state, 'up');
});

t.test('gateway drops handshake answers sent to it', async (t) => {
  const { gw, wire } = up();
  const cookie = encode({
    type: 'COOKIE',
    enNonce: Buffer.alloc(16),
    cookieTime: 1,
    cookie: Buffer.alloc(16),
    gwPub: Buffer.alloc(32),
  });
  const r = gw.handleDatagram(cookie, wire.from, T0);
  t.match(r.events, [{ kind: 'dropped', reason: 'wrong-direction' }]);
  t.equal(r.send.length, 0);
});

t.test('after a re-login the agent refills the pools it had', async (t) => {
  const { agent, dir, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  wire.run(agent.reserve(IN1, 17, T0), T0);
  wire.gw = new GatewayControl({ policy: dir }); // gateway restart
  wire.run(agent.keepalive(T0 + 1000), T0 + 1000);
  t.equal(agent.state, 'up');
  t.equal(agent.poolSize(IN1, 6), 4);
  t.equal(agent.poolSize(IN1, 17), 4);
  t.equal(wire.gw.stats().reservations, 8);
});

t.test('a COOKIE with an invalid gateway key is ignored; HELLO keeps being retransmitted', async (t) => {
  const { agent } = setup();
  const hello = decode(agent.login(T0).send[0]!.data);
  if (hello.type !== 'HELLO') throw new Error('no HELLO');
  const bad = encode({
    type: 'COOKIE',
    enNonce: hello.enNonce,
    cookieTime: Math.floor(T0 / 1000),
    cookie: Buffer.alloc(16, 1),
    gwPub: Buffer.alloc(32), // small-order point
  });
  t.match(agent.handleDatagram(bad, T0).events, [{ kind: 'dropped', reason: 'bad-gateway-key' }]);
  t.equal(agent.state, 'hello');
  t.equal(agent.poll(T0 + 250).send.length, 1, 'HELLO retransmitted');
});

t.test('a throwing directory callback becomes an internal refusal, never a crash', async (t) => {
  const { agent, dir, gw, wire } = up();
  dir.mayReach = () => {
    throw new Error('ldap down');
  };
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.match(ev(wire, 'reserve-failed')[0], { reason: 'internal' });
  t.ok(wire.gatewayEvents.some((e) => e.kind === 'policy-error' && e.detail === 'ldap down'));
  dir.lookupUser = () => {
    throw new Error('ldap down');
  };
  const s2 = new Wire(
    new AgentControl({
      user: 'alice',
      userSecret: ALICE_SECRET,
      group: 'sales',
      groupKey: { version: 1, key: GK1 },
    }),
    gw,
    { addr: '203.0.113.3', port: 1 },
  );
  login(s2);
  t.match(
    s2.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'internal', authenticated: false },
  );
  dir.releasePorts = () => {
    throw new Error('pool bug');
  };
  t.doesNotThrow(() => gw.poll(T0 + 10_000_000));
});
