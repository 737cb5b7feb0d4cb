// The agent's control plane across a restart of the agent (docs/reliability.md): save() keeps
// what resume() needs to go on with the same session - no new login while the gateway still knows
// it - and a port a flow took is never handed out again.
import t from 'tap';
import { decode, GatewayControl, type AgentSessionState } from '../../src/protocol/index.ts';
import { aliceAgent, RESET_KEY, T0, login, setup } from './harness.ts';

const IN1 = 'intra1.corp.example';

/** alice up with 4 pooled ports; one was taken by a flow; then the agent process died. */
function saved() {
  const s = setup();
  login(s.wire);
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  const taken = s.agent.takePort(IN1, 6, T0).port!;
  const st = JSON.parse(JSON.stringify(s.agent.save())) as AgentSessionState; // as a store keeps it
  return { ...s, st, taken };
}

t.test('save() holds the session and the pooled ports, not the port a flow took', async (t) => {
  const { st, taken, agent } = saved();
  t.equal(st.sessionId, agent.session);
  t.equal(st.pools.length, 3);
  t.notOk(st.pools.some((p) => p.t === taken.t));
  t.notOk(JSON.stringify(st).includes('encKey'), 'no flow key is kept: they are derived again');
});

t.test('a restarted agent goes on with its session: the gateway answers, no HELLO', async (t) => {
  const { st, wire } = saved();
  const agent = aliceAgent();
  wire.agent = agent;
  const r = agent.resume(st, T0 + 3000);
  t.match(r.events, [{ kind: 'session-up', sessionId: st.sessionId, resumed: true }]);
  t.same(
    r.send.map((o) => decode(o.data).type),
    ['KEEPALIVE'],
    'a KEEPALIVE at once, to learn whether the gateway still knows the session',
  );
  const before = wire.gatewayEvents.length;
  wire.run(r, T0 + 3000);
  t.notOk(
    wire.gatewayEvents.slice(before).some((e) => e.kind === 'dropped' || e.kind === 'session-up'),
    'accepted: no replay, no new session',
  );
  t.equal(agent.state, 'up');
  t.equal(agent.session, st.sessionId);
});

t.test('pooled ports come back with the same keys; the taken one is not handed out again', async (t) => {
  const { st, taken, agent: old } = saved();
  const agent = aliceAgent();
  agent.resume(st, T0 + 3000);
  const ports = [1, 2, 3].map(() => agent.takePort(IN1, 6, T0 + 3000).port!);
  t.notOk(ports.some((p) => p.t === taken.t));
  const oldPorts = [1, 2, 3].map(() => old.takePort(IN1, 6, T0).port!);
  t.same(
    ports.map((p) => p.keys),
    oldPorts.map((p) => p.keys),
  );
});

t.test('a gateway that lost the session answers unknown-session: the agent says HELLO once', async (t) => {
  const { st, dir } = saved();
  const agent = aliceAgent();
  // restarted without its store (its reset key is kept apart: gateway/src/reset-key.ts), so its
  // refusal carries the session's reset token, which the resumed agent still knows
  const gw = new GatewayControl({ policy: dir, resetKey: RESET_KEY });
  t.ok(st.resetToken, 'the saved session keeps its reset token');
  const r = agent.resume(st, T0 + 3000);
  const answer = gw.handleDatagram(r.send[0]!.data, { addr: '203.0.113.2', port: 61000 }, T0 + 3000);
  const a = agent.handleDatagram(answer.send[0]!.data, T0 + 3000);
  t.match(a.events, [{ kind: 'session-down', reason: 'unknown-session' }]);
  t.same(
    a.send.map((o) => decode(o.data).type),
    ['HELLO'],
  );
});

t.test('the agent’s numbering goes on: its requests after the restart are new to the gateway', async (t) => {
  const { st, wire } = saved();
  const agent = aliceAgent();
  wire.agent = agent;
  wire.run(agent.resume(st, T0 + 3000), T0 + 3000);
  const before = wire.agentEvents.length;
  wire.run(agent.reserve(IN1, 6, T0 + 3000), T0 + 3000);
  t.ok(wire.agentEvents.slice(before).some((e) => e.kind === 'reserved'));
});

t.test('changeCount moves with every change a store must keep', async (t) => {
  const s = setup();
  const c0 = s.agent.changeCount;
  login(s.wire);
  const c1 = s.agent.changeCount;
  t.ok(c1 > c0, 'session up');
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  const c2 = s.agent.changeCount;
  t.ok(c2 > c1, 'ports reserved');
  s.agent.takePort(IN1, 6, T0);
  t.ok(s.agent.changeCount > c2, 'a port taken (no message sent)');
});
