// The agent's VIN in RESERVE (docs/protocol.md §5, §12): what vinOf gives travels in RESERVE and
// lands on every row of the reservation table for that IN, an FTP data row inherits its control
// row's, and a VIN that is not an IPv4 address fails the reserve before anything is sent.
import t from 'tap';
import { decode, type AgentEvent } from '../../src/protocol/index.ts';
import { BOB_SECRET, T0, login, setup, Wire } from './harness.ts';

const IN1 = 'intra1.corp.example';
const IN2 = 'intra2.corp.example';
const VIN1 = '198.19.224.7';
const VIN2 = '198.19.230.9';
const vinOf = (inName: string) => ({ [IN1]: VIN1, [IN2]: VIN2 })[inName];
const ev = <K extends AgentEvent['kind']>(w: Wire, kind: K) =>
  w.agentEvents.filter((e): e is Extract<AgentEvent, { kind: K }> => e.kind === kind);
const reservationRecords = (w: Wire) =>
  w.gatewayEvents.flatMap((e) => (e.kind === 'reservation' ? [e.record] : []));

function up(opts: Parameters<typeof setup>[0] = {}) {
  const s = setup(opts);
  login(s.wire);
  return s;
}

t.test('RESERVE carries vinOf(inName); every reservation record of it carries that VIN', async (t) => {
  const asked: string[] = [];
  const { agent, gw, wire } = up({
    vinOf: (n) => {
      asked.push(n);
      return vinOf(n);
    },
  });
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
  t.equal(gw.reservations.get(6, p.t)!.vin, VIN1, 'the table has it too');
});

t.test('the UDP pool of the same IN carries the same VIN', async (t) => {
  const asked: string[] = [];
  const { agent, gw, wire } = up({
    vinOf: (n) => {
      asked.push(n);
      return vinOf(n);
    },
  });
  wire.run(agent.reserve(IN1, 6, T0), T0);
  wire.run(agent.reserve(IN1, 17, T0), T0);
  t.same(asked, [IN1, IN1]);
  t.equal(gw.reservations.get(17, ev(wire, 'reserved')[1]!.ports[0]!.t)!.vin, VIN1, 'UDP reservation of IN1');
});

t.test('the top-up RESERVE (from takePort) carries the VIN as well', async (t) => {
  const { agent, wire } = up({ vinOf });
  wire.run(agent.reserve(IN1, 6, T0), T0);
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
});

t.test('another IN gets its own VIN', async (t) => {
  const bob = up({ user: 'bob', secret: BOB_SECRET, group: 'dev', vinOf });
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

t.test('without vinOf the RESERVE says 0.0.0.0 and no row has a vin, FTP data rows neither', async (t) => {
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
});

t.test('a vinOf that gives no VIN (undefined) makes the RESERVE say 0.0.0.0', async (t) => {
  const s2 = up({ vinOf: () => undefined });
  const b2 = s2.wire.toGateway.length;
  s2.wire.run(s2.agent.reserve(IN1, 6, T0), T0);
  t.match(decode(s2.wire.toGateway[b2]!), { type: 'RESERVE', vin: '0.0.0.0' }, 'vinOf → undefined');
  t.ok(reservationRecords(s2.wire).every((r) => !('vin' in r)));
});

t.test('an FTP data reservation inherits the VIN of its control reservation', async (t) => {
  const { agent, gw, wire } = up({ vinOf });
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

const badVins: Array<[string, () => string]> = [
  ['300.1.1.1', () => '300.1.1.1'],
  ['abc', () => 'abc'],
  ['::1', () => '::1'],
  [
    'a throw',
    (): string => {
      throw new Error('boom');
    },
  ],
];
for (const [what, bad] of badVins)
  t.test(`a vinOf giving ${what} fails the reserve, sends nothing, and leaves nothing behind`, async (t) => {
    let answer: (inName: string) => string = bad;
    const { agent, gw, wire } = up({ vinOf: (n) => answer(n) });
    const r = agent.reserve(IN1, 6, T0);
    t.same(r.send, [], 'no RESERVE');
    t.match(r.events, [{ kind: 'reserve-failed', inName: IN1, proto: 6, reason: 'internal' }]);
    t.equal(gw.stats().reservations, 0);
    // no state was left behind: with a good VIN the same IN reserves at once
    answer = () => VIN1;
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.equal(agent.poolSize(IN1, 6), 4, 'pool filled once vinOf answers');
    t.ok(reservationRecords(wire).every((x) => x.vin === VIN1));
  });

t.test(
  'a bad VIN on the re-login path (wishes sent after AUTH_OK) is an event, not an exception',
  async (t) => {
    const s = setup({ vinOf: () => 'abc' });
    s.agent.reserve(IN1, 6, T0);
    t.doesNotThrow(() => login(s.wire));
    t.equal(s.agent.state, 'up');
    t.match(ev(s.wire, 'reserve-failed'), [{ inName: IN1, reason: 'internal' }]);
  },
);
