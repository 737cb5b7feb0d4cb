// The gateway daemon across a restart and a lost directory (docs/reliability.md), against a real
// slapd, with an agent over real UDP: a restarted gateway goes on with the sessions and
// reservations it kept (no new login); a bound flow goes on only when the engine hands over its
// state, otherwise it ends with a word to its agent; a directory gone too long releases the unused
// reservations at once (fail closed) while live flows go on.
import t, { type Test } from 'tap';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { protocol } from '@gsra/common';
import { startSlapd } from '../../ldap/src/fixture/index.ts';
import type { EngineFlowState } from '../src/data-plane.ts';
import { gatewayFixture, RecordingDataPlane } from './gateway-fixture.ts';

const IN1 = 'intra1.corp.example';
const dir = await startSlapd();
t.teardown(() => dir.stop());
const { gateway } = gatewayFixture(dir);

/** alice with 4 ports for intra1, the first bound in-band by the engine, on gateway g1. */
async function aliceWithAFlow(t: Test, dp = new RecordingDataPlane()) {
  const g1 = await gateway(t, { dataPlane: dp });
  const a = await g1.aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  const bound = dp.added[0]!;
  dp.emit({ kind: 'bound', id: bound.id, proto: 6, t: bound.t, ghr: '127.0.0.1', m: 33333, d: 80 });
  await a.waitFor((e) => e.kind === 'bound');
  return { g1, a, dp, bound };
}

t.test('a restarted gateway goes on with alice’s session and unused ports: no new login', async (t) => {
  const { g1, a, dp, bound } = await aliceWithAFlow(t);
  await g1.stop(); // as after kill -9: the store was written before every answer
  const dp2 = new RecordingDataPlane();
  const g2 = await gateway(t, { dataPlane: dp2, port: g1.port, stateDir: g1.stateDir });
  t.match(await g2.logged((l) => l.message === 'state restored'), {
    sessions: 1,
    reservations: 4,
    flowsCarried: 0,
    flowsLost: 1,
  });
  const unused = dp.added.slice(1);
  t.same(
    dp2.added.map((r) => [r.id, r.t, r.keys]),
    unused.map((r) => [r.id, r.t, r.keys]),
    'the engine gets each unused row again: same id, port and keys',
  );
  t.ok(
    unused.every((r) => g2.gw.pool.isTaken(r.t)),
    'their ports are out of the pool',
  );
  const before = a.events.length;
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  const ev = await a.waitFor((e) => e.kind === 'reserved' || e.kind === 'session-down');
  t.equal(ev.kind, 'reserved', 'a request on the old session is answered');
  t.notOk(
    g2.lines.some((l) => l.message === 'session up'),
    'no second login',
  );
  t.notOk(a.events.slice(before).some((e) => e.kind === 'session-down'));
  // the bound flow: an engine without flow-state hooks cannot take its state, so it ends and alice hears which one
  const lost = await a.waitFor((e) => e.kind === 'gateway-error');
  t.match(lost, {
    reason: 'unknown-reservation',
    text: `flow 6/${bound.t} lost: the gateway restarted and its engine could not keep the flow`,
  });
  t.ok(g2.lines.some((l) => l.message === 'flow lost' && l.t === bound.t && l.user === 'alice'));
  t.ok(
    g2.gw.pool.coolingToward(bound.t, '10.0.0.11', Date.now()),
    'its port cools toward intra1 (the server may still hold the connection)',
  );
});

t.test('with an engine that hands over its flow state, the bound flow is carried on', async (t) => {
  const dp = new RecordingDataPlane();
  const state: EngineFlowState = { format: 1, data: Buffer.from('sne, windows, binding').toString('base64') };
  let exported = false;
  dp.flowState = {
    exportChanged: () => {
      if (exported || !dp.added[0]?.binding) return [];
      exported = true;
      return [[dp.added[0].id, state]];
    },
    import: () => {
      throw new Error('not this one');
    },
  };
  const { g1, a, bound } = await aliceWithAFlow(t, dp);
  a.apply(a.agent.keepalive(Date.now())); // any change: the state is written with it
  await new Promise((r) => setTimeout(r, 50));
  await g1.stop();
  const imported: Array<[protocol.Reservation, EngineFlowState]> = [];
  const dp2 = new RecordingDataPlane();
  dp2.flowState = { exportChanged: () => [], import: (r, st) => void imported.push([r, st]) };
  const g2 = await gateway(t, { dataPlane: dp2, port: g1.port, stateDir: g1.stateDir });
  t.match(await g2.logged((l) => l.message === 'state restored'), { flowsCarried: 1, flowsLost: 0 });
  t.equal(imported.length, 1);
  t.match(imported[0]![0], { id: bound.id, t: bound.t, binding: { ghr: '127.0.0.1', m: 33333 } });
  t.same(imported[0]![1], state, 'the engine gets back exactly what it exported');
  t.equal(dp2.added.length, 3, 'the unused rows are added as before');
});

t.test('a flow state the engine refuses: the flow ends, its agent hears, the log says why', async (t) => {
  const dp = new RecordingDataPlane();
  let exported = false;
  dp.flowState = {
    exportChanged: () => {
      if (exported || !dp.added[0]?.binding) return [];
      exported = true;
      return [[dp.added[0].id, { format: 9, data: 'AA==' }]];
    },
    import: () => {},
  };
  const { g1, a, bound } = await aliceWithAFlow(t, dp);
  a.apply(a.agent.keepalive(Date.now()));
  await new Promise((r) => setTimeout(r, 50));
  await g1.stop();
  const dp2 = new RecordingDataPlane();
  dp2.flowState = {
    exportChanged: () => [],
    import: () => {
      throw new Error('flow snapshot: unknown format Some(9)');
    },
  };
  const g2 = await gateway(t, { dataPlane: dp2, port: g1.port, stateDir: g1.stateDir });
  t.match(await g2.logged((l) => l.message === 'flow state refused at restore'), {
    user: 'alice',
    t: bound.t,
    reason: /unknown format/,
  });
  t.match(await g2.logged((l) => l.message === 'state restored'), { flowsCarried: 0, flowsLost: 1 });
  t.match(await a.waitFor((e) => e.kind === 'gateway-error'), { text: new RegExp(`flow 6/${bound.t} lost`) });
});

t.test('the state directory is the gateway’s alone; the journal holds no secret in clear', async (t) => {
  const { g1 } = await aliceWithAFlow(t);
  await g1.stop();
  t.equal(statSync(g1.stateDir).mode & 0o777, 0o700);
  for (const f of readdirSync(g1.stateDir))
    t.equal(statSync(join(g1.stateDir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.same(readdirSync(g1.stateDir).sort(), ['reset-key', 'state.journal', 'state.key']);
});

t.test('a store that cannot be written does not stop the gateway; it says so', async (t) => {
  const failing = {
    load: async () => new Map(),
    commit: () => {
      throw new Error('ENOSPC: no space left on device');
    },
    sync: () => {},
    info: () => ({ where: 'test', records: 0, bytes: 0, compactedAt: 0, loadProblem: null }),
    close: () => {},
  };
  const g = await gateway(t, { store: failing });
  const a = await g.aliceUp();
  t.equal(a.agent.state, 'up', 'alice logged in all the same');
  await g.logged((l) => l.message === 'state store: write failed' && /ENOSPC/.test(String(l.reason)));
});

t.test('the directory gone too long: unused ports are released at once, the live flow goes on', async (t) => {
  const dp = new RecordingDataPlane();
  const g = await gateway(t, { dataPlane: dp, refreshSec: 1 });
  const a = await g.aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  const live = dp.added[0]!;
  dp.emit({ kind: 'bound', id: live.id, proto: 6, t: live.t, ghr: '127.0.0.1', m: 33333, d: 80 });
  await dir.kill();
  let restarted = false;
  t.teardown(async () => {
    if (!restarted) await dir.start();
  });
  const stale = await g.logged(
    (l) => l.message === 'directory unavailable too long: new flows refused, unused reservations released',
    0,
    15_000,
  );
  t.match(stale, { released: 3, reason: 'directory-unavailable' });
  t.same(
    dp.removed.map((r) => r.t).sort(),
    dp.added
      .slice(1)
      .map((r) => r.t)
      .sort(),
    'the engine forgets every unused reservation: no new flow can bind on one',
  );
  t.equal(g.gw.control.reservations.get(6, live.t), live, 'the live flow goes on');
  t.match(await a.waitFor((e) => e.kind === 'gateway-error'), {
    reason: 'directory-unavailable',
    text: /^reservations refused: the gateway has not been able to read the office directory/,
  });
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  t.match(await a.waitFor((e) => e.kind === 'reserve-failed'), { reason: 'directory-unavailable' });
  await dir.start();
  restarted = true;
  await g.gw.reload();
  t.same(g.gw.health(), [], 'the directory answers again');
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  const back = await a.waitFor((e) => e.kind === 'reserved', 5000);
  t.equal(back.kind, 'reserved', 'service is back as soon as the directory is');
});
