// The agent daemon across a crash of itself (docs/reliability.md): a second run on the same state
// directory goes on with the first run's session - no new login - and its live TCP flows are back
// in the engine before the packet path starts; a gateway that forgot the session gets a new login
// and the old flows leave; a clean stop logs out and keeps nothing.
import t, { type Test } from 'tap';
import { cpSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, until } from './agent-fixture.ts';

/** A first run with a TCP flow and a UDP flow, "killed": its socket goes deaf, its state is copied. */
async function killedWithFlows(t: Test) {
  const first = await setup(t);
  first.dp.emit({ kind: 'held', ...first.syn(50001) });
  first.dp.emit({ kind: 'held', ...first.syn(50002), proto: 17 });
  await until('two flows', () => first.dp.added.length === 2);
  // kill -9: the state is what the journal holds now; the old process hears and says nothing
  const stateDir = join(mkdtempSync(join(tmpdir(), 'gsra-agent-killed-')), 'state');
  cpSync(first.stateDir, stateDir, { recursive: true });
  for (const p of first.gw.peers) first.gw.muted.add(p);
  return { first, stateDir, tcp: first.dp.added[0]!, udp: first.dp.added[1]! };
}

t.test('a restarted agent goes on with its session: no new login', async (t) => {
  const { first, stateDir } = await killedWithFlows(t);
  const second = await setup(t, { gw: first.gw, stateDir });
  t.equal(first.gw.sessionsUp, 1, 'the gateway saw one login in all');
  t.ok(second.lines.some((l) => l.message === 'session resumed'));
  t.notOk(second.lines.some((l) => l.message === 'session up'));
  t.equal(second.agent.status().groups[0]!.session, 'up');
});

t.test('its live TCP flow is back in the engine, before the packet path starts', async (t) => {
  const { first, stateDir, tcp } = await killedWithFlows(t);
  const second = await setup(t, { gw: first.gw, stateDir });
  const back = second.dp.added.find((f) => f.s === 50001);
  t.ok(back, 'the TCP flow');
  t.match(back, { proto: 6, pen: tcp.pen, vin: tcp.vin, d: 80, t: tcp.t, beforeStart: true });
  t.same(back!.keys, tcp.keys, 'with the same keys (derived again from the session secret)');
  t.match(
    second.lines.find((l) => l.message === 'state restored'),
    { flows: 1, flowsDropped: 1 },
  );
  t.same(
    second.agent.status().vins.map((v) => v.vin),
    [tcp.vin],
    'the name keeps its VIN',
  );
});

t.test('its TCP flow comes back with the engine snapshot the first run saved', async (t) => {
  const first = await setup(t);
  first.dp.emit({ kind: 'held', ...first.syn(50004) });
  await until('the flow', () => first.dp.added.length === 1);
  const snap = Buffer.from('established, sne, isn');
  first.dp.snapshots.set(first.dp.added[0]!.id, snap);
  // the snapshot timer (every 500 ms) writes it; then the state is what a kill -9 leaves
  const stateDir = join(mkdtempSync(join(tmpdir(), 'gsra-agent-killed-')), 'state');
  await new Promise((r) => setTimeout(r, 1200));
  cpSync(first.stateDir, stateDir, { recursive: true });
  for (const p of first.gw.peers) first.gw.muted.add(p);
  const second = await setup(t, { gw: first.gw, stateDir });
  const back = second.dp.added.find((f) => f.s === 50004);
  t.same(back?.snapshot, snap, 'the engine gets back what it snapshot');
});

t.test('its UDP flow is not restored: its port is released, its next datagram starts anew', async (t) => {
  const { first, stateDir, udp } = await killedWithFlows(t);
  const second = await setup(t, { gw: first.gw, stateDir });
  t.notOk(second.dp.added.some((f) => f.proto === 17));
  await until('the release', () => !first.gw.control.reservations.has(17, udp.t));
  second.dp.emit({ kind: 'held', ...second.syn(50002), proto: 17 });
  await until('a new UDP flow', () => second.dp.added.some((f) => f.proto === 17));
});

t.test('a gateway that forgot the session: one new login, the restored flows leave', async (t) => {
  const { first, stateDir } = await killedWithFlows(t);
  first.gw.restart();
  const second = await setup(t, { gw: first.gw, stateDir });
  await until('the new login', () => first.gw.sessionsUp === 2);
  const back = second.dp.added.find((f) => f.s === 50001)!;
  await until('the restored flow removed', () => second.dp.removed.includes(back.id));
  t.ok(second.lines.some((l) => l.message === 'flow ended' && l.reason === 'unknown-session'));
});

t.test('a clean stop logs out and keeps nothing: the next run logs in', async (t) => {
  const first = await setup(t);
  first.dp.emit({ kind: 'held', ...first.syn(50003) });
  await until('the flow', () => first.dp.added.length === 1);
  await first.agent.stop();
  await until('the logout', () => first.gw.control.stats().sessions === 0);
  const second = await setup(t, { gw: first.gw, stateDir: first.stateDir });
  t.equal(first.gw.sessionsUp, 2, 'a new login');
  t.same(second.dp.added, [], 'no flow restored');
});

t.test('the state directory holds the journal and its key, both 0600', async (t) => {
  const { stateDir } = await setup(t);
  t.same(readdirSync(stateDir).sort(), ['agent.journal', 'state.key']);
  for (const f of readdirSync(stateDir)) t.equal(statSync(join(stateDir, f)).mode & 0o777, 0o600, f);
});

t.test('a burst of held connections asks for as many ports at once', async (t) => {
  const { gw, dp, syn } = await setup(t);
  for (let i = 0; i < 40; i++) dp.emit({ kind: 'held', ...syn(51000 + i) });
  await until('40 flows', () => dp.added.length === 40);
  t.same(dp.failed, []);
  t.ok(
    gw.control.stats().reservations >= 40,
    `the gateway reserved ${gw.control.stats().reservations} ports`,
  );
  t.equal(new Set(dp.added.map((f) => f.t)).size, 40, 'each connection on its own port');
});
