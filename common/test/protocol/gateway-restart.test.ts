// The gateway's control plane across a restart (docs/reliability.md): what takeChanges() reports
// is exactly what restore() needs for the agent's session to go on without a new login - its
// channel numbers, its answers, its rows with their bindings and keys - and what has ended stays
// ended.
import t from 'tap';
import {
  decode,
  GatewayControl,
  type GatewayResult,
  type RowRecord,
  type SessionRecord,
  type StateDelta,
} from '../../src/protocol/index.ts';
import { FakeDirectory, T0, login, setup } from './harness.ts';

const IN1 = 'intra1.corp.example';

/** What a store holds after applying every delta in order (as the daemon's store would). */
class Records {
  sessions = new Map<string, SessionRecord>();
  rows = new Map<number, RowRecord>();
  apply(d: StateDelta): void {
    for (const [k, v] of d.sessions)
      if (v) this.sessions.set(k, v);
      else this.sessions.delete(k);
    for (const [k, v] of d.rows)
      if (v) this.rows.set(k, v);
      else this.rows.delete(k);
  }
  get state() {
    return { sessions: [...this.sessions.values()], rows: [...this.rows.values()] };
  }
}

/** alice logged in with 4 pooled ports for IN1; one of them carries a flow bound in-band. */
function live() {
  const s = setup();
  const store = new Records();
  login(s.wire);
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  const port = s.agent.takePort(IN1, 6, T0).port!;
  s.wire.fromGateway(
    s.gw.onInbandBinding({ proto: 6, t: port.t, ghr: '198.51.100.7', m: 61000, d: 80 }, T0),
    T0,
  );
  store.apply(s.gw.takeChanges());
  return { ...s, store, port };
}

/** The gateway killed and started again on the same records (a fresh process, the same directory). */
function restart(store: Records, dir: FakeDirectory, now: number) {
  const gw = new GatewayControl({ policy: dir });
  const r = gw.restore(store.state, now);
  store.apply(gw.takeChanges());
  return { gw, r };
}

t.test('the store holds the session and every row, with binding and mapping', async (t) => {
  const { store, port, agent } = live();
  t.equal(store.sessions.size, 1);
  const rec = [...store.sessions.values()][0]!;
  t.equal(rec.id, agent.session);
  t.equal(rec.nextSerial, 4);
  t.equal(store.rows.size, 4);
  t.match(
    [...store.rows.values()].find((r) => r.t === port.t),
    {
      binding: { ghr: '198.51.100.7', m: 61000 },
      mapping: { d: 80 },
      serial: port.serial,
    },
  );
});

t.test('after a restart the agent’s session goes on: no login, its next request is answered', async (t) => {
  const { store, dir, wire, agent } = live();
  const { gw, r } = restart(store, dir, T0 + 5000);
  t.match(r, { sessions: 1, dropped: 0 });
  t.equal(r.rows.length, 4);
  wire.gw = gw;
  const before = wire.agentEvents.length;
  const gwBefore = wire.gatewayEvents.length;
  wire.run(agent.keepalive(T0 + 6000), T0 + 6000);
  wire.run(agent.reserve(IN1, 6, T0 + 6000), T0 + 6000);
  const events = wire.agentEvents.slice(before);
  t.notOk(
    events.some((e) => e.kind === 'session-down'),
    'the session was not lost',
  );
  t.ok(
    events.some((e) => e.kind === 'reserved'),
    'a RESERVE is answered on the restored session',
  );
  t.notOk(
    wire.gatewayEvents.slice(gwBefore).some((e) => e.kind === 'session-up'),
    'no second session',
  );
  t.equal(gw.stats().sessions, 1);
});

t.test('restored rows keep their ids, keys, binding and mapping; ids after them are new', async (t) => {
  const { store, dir, gw: old, port } = live();
  const { gw, r } = restart(store, dir, T0 + 5000);
  const was = old.reservations.get(6, port.t)!;
  const now = gw.reservations.get(6, port.t)!;
  t.equal(now.id, was.id);
  t.same(now.keys, was.keys, 'flow keys derived again from the session secret');
  t.same(now.keys, port.keys, 'the same keys the agent holds');
  t.same(now.binding, { ghr: '198.51.100.7', m: 61000 });
  t.same(now.mapping, { d: 80 });
  t.equal(now.expiresAt, T0 + 5000 + 300_000, 'a mapped row lives its lifetime again from the restart');
  t.ok(r.rows.every((x) => x.user === 'alice' && x.group === 'sales'));
});

t.test('a request answered just before the crash gets the same answer after it, done once', async (t) => {
  const { store, dir, wire, agent, gw: old } = live();
  const send = agent.reserve('intra1.corp.example', 6, T0 + 1000); // pool is at 3: below target
  const req = send.send[0]!.data;
  const answer = old.handleDatagram(req, wire.from, T0 + 1000);
  store.apply(old.takeChanges()); // written before the answer left; then the gateway died
  const { gw } = restart(store, dir, T0 + 5000);
  const again = gw.handleDatagram(req, wire.from, T0 + 5000);
  t.ok(again.send[0]!.data.equals(answer.send[0]!.data), 'the very same RESERVED');
  t.equal(gw.stats().reservations, 5, 'nothing reserved twice');
});

t.test('an old request replayed after the restart is refused as before it', async (t) => {
  const { store, dir, wire, agent, gw: old } = live();
  const oldReserve = wire.toGateway.find((d) => decode(d).type === 'RESERVE')!;
  // five more requests: the RESERVE's answer is no longer among those kept
  for (let i = 1; i <= 5; i++) wire.run(agent.keepalive(T0 + i), T0 + i);
  store.apply(old.takeChanges());
  const { gw } = restart(store, dir, T0 + 5000);
  const r: GatewayResult = gw.handleDatagram(oldReserve, wire.from, T0 + 5000);
  t.ok(r.events.some((e) => e.kind === 'dropped' && e.reason === 'replay'));
  t.equal(gw.stats().reservations, 4);
});

t.test(
  'the gateway’s own numbering goes on: the agent accepts what it sends after the restart',
  async (t) => {
    const { store, dir, wire, agent } = live();
    const { gw } = restart(store, dir, T0 + 5000);
    wire.gw = gw;
    const before = wire.agentEvents.length;
    // an FTP alias is a message the gateway starts: its seq must be new to the agent
    const ctrl = [...gw.reservations.values()].find((x) => x.mapping)!;
    wire.fromGateway(gw.ftpAlias({ ctrlT: ctrl.t, aliasPort: 30000 }, T0 + 5000), T0 + 5000);
    t.ok(
      wire.agentEvents.slice(before).some((e) => e.kind === 'ftp-alias'),
      'accepted, not a replay',
    );
    t.equal(agent.state, 'up');
  },
);

t.test('sessions past their lifetime and rows without a session are not restored, nor kept', async (t) => {
  const { store, dir } = live();
  const s = [...store.sessions.values()][0]!;
  const { r } = restart(store, dir, s.expiresAt + 1);
  t.match(r, { sessions: 0, rows: [], dropped: 5 });
  t.equal(store.sessions.size + store.rows.size, 0, 'the store forgets them too');
});

t.test('a row the data plane cannot carry on ends, and its agent hears at once which flow', async (t) => {
  const { store, dir, wire, agent, port } = live();
  const { gw, r } = restart(store, dir, T0 + 5000);
  wire.gw = gw;
  const row = r.rows.find((x) => x.t === port.t)!;
  const before = wire.agentEvents.length;
  const lost = gw.lose(row, 'the gateway restarted without its flow state', T0 + 5000);
  t.match(lost.events, [{ kind: 'reservation-ended', t: port.t, reason: 'lost' }]);
  wire.fromGateway(lost, T0 + 5000);
  t.match(wire.agentEvents.slice(before), [
    {
      kind: 'gateway-error',
      reason: 'unknown-reservation',
      text: `flow 6/${port.t} lost: the gateway restarted without its flow state`,
    },
  ]);
  t.equal(agent.poolSize(IN1, 6), 3, 'the pooled ports are still good');
  store.apply(gw.takeChanges());
  t.notOk(
    [...store.rows.values()].some((x) => x.t === port.t),
    'the store forgets the row',
  );
});

t.test('what ended before the crash stays ended', async (t) => {
  const { store, dir, wire, agent, gw: old, port } = live();
  wire.run(agent.release(6, port.t, T0 + 1000), T0 + 1000);
  store.apply(old.takeChanges());
  const { gw } = restart(store, dir, T0 + 5000);
  t.notOk(gw.reservations.has(6, port.t));
  t.equal(gw.stats().reservations, 3);
});
