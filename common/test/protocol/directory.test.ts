// What the directory's answers do in the protocol: canonical user ids (sessions, per-user limits
// and the audit log use the directory's own id whatever form the agent sent), account refusals
// after the proof (account-disabled, revoked-user), a lookup refusal before any proof
// (directory-unavailable, same answer for every id), refusal texts reaching the agent, and
// recheckAll keeping the live flows the daemon asks it to keep.
import t from 'tap';
import { AgentControl, GatewayControl, type AgentEvent } from '../../src/protocol/index.ts';
import { ALICE_SECRET, GK1, T0, Wire, login, setup } from './harness.ts';

const IN1 = 'intra1.corp.example';
const ev = <K extends AgentEvent['kind']>(w: Wire, kind: K) =>
  w.agentEvents.filter((e): e is Extract<AgentEvent, { kind: K }> => e.kind === kind);

/** A directory where ALICE, alice@corp.example and CORP\alice all name alice (canonical id 'alice'). */
function aliased() {
  const s = setup({ user: 'ALICE' });
  const alice = s.dir.users.get('alice')!;
  alice.id = 'alice';
  for (const alias of ['ALICE', 'alice@corp.example', 'CORP\\alice']) s.dir.users.set(alias, alice);
  return s;
}

function agentAs(gw: GatewayControl, user: string, port: number) {
  return new Wire(
    new AgentControl({ user, userSecret: ALICE_SECRET, group: 'sales', groupKey: { version: 1, key: GK1 } }),
    gw,
    { addr: '203.0.113.2', port },
  );
}

t.test('the session, the port pool and the audit log use the canonical id, not the form sent', async (t) => {
  const { agent, dir, wire } = aliased();
  login(wire);
  t.equal(agent.state, 'up');
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'decision'),
    { step: 'auth', user: 'alice', decision: 'allow' },
  );
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'session-up'),
    { user: 'alice' },
  );
  wire.run(agent.reserve(IN1, 6, T0), T0);
  t.equal(dir.reserveCalls[0]?.user, 'alice', 'per-user port limits count the canonical id');
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'decision' && e.step === 'reserve'),
    { user: 'alice', decision: 'allow' },
  );
});

t.test('aliases cannot bypass the per-user session limit', async (t) => {
  const { dir } = aliased();
  const gw = new GatewayControl({ policy: dir, maxSessionsPerUser: 2 });
  const forms = ['ALICE', 'alice@corp.example', 'CORP\\alice'];
  const wires = forms.map((u, i) => agentAs(gw, u, 62000 + i));
  for (const w of wires) login(w);
  t.same(
    wires.map((w) => w.agent.state),
    ['up', 'up', 'failed'],
  );
  t.match(ev(wires[2]!, 'refused')[0], { reason: 'rate-limited', authenticated: true });
  t.match(
    wires[2]!.gatewayEvents.find((e) => e.kind === 'decision'),
    { user: 'alice', reason: 'rate-limited' },
    'the refusal is logged under the canonical id',
  );
});

t.test('a disabled account is refused account-disabled after the proof, with the words', async (t) => {
  const { dir, agent, wire, gw } = setup();
  dir.users.get('alice')!.refusal = {
    reason: 'account-disabled',
    text: 'the account is disabled in the directory',
  };
  login(wire);
  t.equal(agent.state, 'failed');
  t.match(ev(wire, 'refused')[0], {
    reason: 'account-disabled',
    authenticated: true,
    text: 'the account is disabled in the directory',
  });
  t.equal(gw.stats().sessions, 0);
});

t.test(
  'a wrong secret for a disabled account still says bad-proof (nothing told before the proof)',
  async (t) => {
    const { dir, agent, wire } = setup({ secret: Buffer.alloc(32, 0x99) });
    dir.users.get('alice')!.refusal = { reason: 'account-disabled', text: 'disabled' };
    login(wire);
    t.match(ev(wire, 'refused')[0], { reason: 'bad-proof', authenticated: false });
    t.equal(agent.state, 'failed');
  },
);

t.test('directory-unavailable is answered before any proof, with the help-desk words', async (t) => {
  const { dir, wire } = setup();
  const text = 'office directory unreachable from the gateway';
  dir.lookupUser = () => ({ refused: 'directory-unavailable', text });
  login(wire);
  t.match(ev(wire, 'refused')[0], { reason: 'directory-unavailable', authenticated: false, text });
});

t.test(
  'a session whose account gets disabled: the next RESERVE is refused and ends the session',
  async (t) => {
    const { dir, agent, wire } = setup();
    login(wire);
    t.equal(agent.state, 'up');
    dir.users.get('alice')!.refusal = { reason: 'account-disabled', text: 'the account is locked' };
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.match(ev(wire, 'reserve-failed')[0], { reason: 'account-disabled', text: 'the account is locked' });
    t.match(ev(wire, 'session-down')[0], { reason: 'account-disabled' });
  },
);

t.test(
  'the directory being unreachable reaches the agent as directory-unavailable with its text',
  async (t) => {
    const { dir, agent, wire } = setup();
    login(wire);
    const text = 'office directory unreachable from the gateway for 3 min';
    dir.lookupUser = () => ({ refused: 'directory-unavailable', text });
    wire.run(agent.reserve(IN1, 6, T0), T0);
    t.match(ev(wire, 'reserve-failed')[0], { reason: 'directory-unavailable', text });
    t.equal(agent.state, 'up', 'a directory outage does not end the session');
  },
);

t.test('recheckAll: refused reservations end unless the daemon keeps them', async (t) => {
  const { dir, agent, wire, gw } = setup();
  login(wire);
  wire.run(agent.reserve(IN1, 6, T0), T0);
  const before = gw.stats().reservations;
  t.ok(before > 0);
  dir.users.get('alice')!.refusal = { reason: 'account-disabled', text: 'disabled' };
  const kept: string[] = [];
  const r1 = gw.recheckAll(T0, (_r, reason) => (kept.push(reason), true));
  t.equal(gw.stats().reservations, before, 'kept');
  t.equal(r1.events.filter((e) => e.kind === 'reservation-ended').length, 0);
  t.ok(kept.length === before && kept.every((k) => k === 'account-disabled'));
  const r2 = gw.recheckAll(T0);
  t.equal(gw.stats().reservations, 0, 'cut without a keep filter');
  t.match(
    r2.events.find((e) => e.kind === 'decision'),
    { step: 'map', user: 'alice', decision: 'deny', reason: 'account-disabled' },
  );
});

t.test(
  'recheckAll tells the agent: ERROR per cut flow, one for pooled ports; the agent drops its pool',
  async (t) => {
    const { dir, agent, wire, gw } = setup();
    login(wire);
    wire.run(agent.reserve(IN1, 6, T0), T0);
    const taken = agent.takePort(IN1, 6, T0);
    wire.run({ send: taken.send, events: taken.events }, T0);
    const port = taken.port!;
    wire.fromGateway(
      gw.onInbandBinding({ proto: 6, t: port.t, ghr: '203.0.113.2', m: 61001, d: 80 }, T0),
      T0,
    );
    t.ok(gw.reservations.get(6, port.t)?.mapping, 'a live flow');
    t.ok(agent.poolSize(IN1, 6) > 0, 'and pooled ports');
    dir.mayReach = () => ({ allow: false, reason: 'not-in-group', text: 'sales may no longer reach intra1' });
    wire.fromGateway(gw.recheckAll(T0), T0);
    const errs = ev(wire, 'gateway-error');
    t.same(
      errs.map((e) => [e.reason, e.text]),
      [
        ['not-in-group', `flow 6/${port.t} refused: sales may no longer reach intra1`],
        ['not-in-group', 'reservations refused: sales may no longer reach intra1'],
      ],
    );
    t.equal(agent.poolSize(IN1, 6), 0, 'the agent no longer uses ports the gateway ended');
    t.equal(agent.state, 'up', 'the session stays');
  },
);
