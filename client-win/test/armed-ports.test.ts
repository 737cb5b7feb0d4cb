// The pools' ports armed in the engine (armed-ports.ts): the daemon hands every pooled port to the
// engine, records the flows the engine starts on them, never uses a port the engine took, and
// withdraws them with their session. A real AgentDaemon and GatewayControl over loopback; the
// engine's pool is played by the recording data plane (native/test/pool.test.ts tests the real one).
import t, { type Test } from 'tap';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { protocol } from '@gsra/common';
import { ArmedPorts } from '../src/armed-ports.ts';
import type { Session } from '../src/control-events.ts';
import { RecordingDataPlane, setup, until } from './agent-fixture.ts';

/** The ports of the flows the daemon logged as started. */
const started = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.message === 'flow started').map((l) => l.t as number);

/** A session with its first flow installed from a held SYN and the rest of its pool armed. */
async function armed(t: Test) {
  const s = await setup(t);
  s.dp.emit({ kind: 'held', ...s.syn(50000) });
  await until('the first flow', () => s.dp.added.length === 1);
  await until('the rest of the pool armed', () => s.dp.armed.size === 3);
  return s;
}

t.test('every pooled port is armed with its keys, for the VIN of its IN', async (t) => {
  const { dp, vin } = await armed(t);
  const ports = [...dp.armed.values()];
  t.ok(ports.every((p) => p.vin === vin && p.proto === 6 && p.ggr === '127.0.0.1'));
  t.ok(ports.every((p) => p.validMs > 0 && p.keys.enToGw.encKey.length === 16));
  t.notOk(
    ports.some((p) => p.t === dp.added[0]!.t),
    'the port the daemon installed itself is not armed',
  );
});

t.test(
  'a connection the engine started is recorded as the daemon’s own, and the pool refilled',
  async (t) => {
    const { dp, agent, lines, syn } = await armed(t);
    const a = dp.takePooled(syn(50001))!;
    const b = dp.takePooled(syn(50002))!;
    t.equal(agent.status().flows.length, 3);
    t.same(
      started(lines).sort(),
      [dp.added[0]!.t, a.t, b.t].sort(),
      'three flows: one installed, two the engine started',
    );
    t.equal(lines.filter((l) => l.message === 'flow started').length, 3);
    t.same(dp.added.length, 1, 'no VAT entry was installed for them');
    await until('the pool topped up in the engine', () => dp.armed.size >= 3);
  },
);

t.test(
  'a port the engine took a moment before the daemon wanted it stays with the engine’s flow',
  async (t) => {
    const { dp, agent, lines, syn } = await armed(t);
    const oldest = [...dp.armed.values()][0]!.t;
    const late = dp.takePooled(syn(50001), false)!; // taken; its event not handled yet
    t.equal(late.t, oldest);
    dp.emit({ kind: 'held', ...syn(50002) }); // the daemon takes the oldest port of its pool: the same one
    await until('the held connection installed', () => dp.added.length === 2);
    t.not(dp.added[1]!.t, late.t, 'the held connection got another port');
    late.emit();
    const ts = started(lines);
    t.equal(agent.status().flows.length, 3);
    t.equal(new Set(ts).size, 3, 'three flows, three ports');
    t.ok(ts.includes(late.t), 'the engine’s flow kept its port');
    t.same(dp.removed, [], 'nothing reset');
  },
);

t.test(
  'a lost session withdraws its armed ports; a flow the engine started on one meanwhile is reset',
  async (t) => {
    const { dp, gw, agent, lines, syn } = await armed(t);
    const old = new Set([...dp.armed.keys()]);
    const late = dp.takePooled(syn(50001), false)!;
    gw.restart();
    await until('a new session', () => gw.sessionsUp === 2 && agent.status().groups[0]!.session === 'up');
    t.notOk(
      [...dp.armed.keys()].some((k) => old.has(k)),
      'none of the old session’s ports is armed any more',
    );
    late.emit();
    t.ok(dp.removed.includes(late.id), 'the flow on the old session’s port was reset');
    t.notOk(started(lines).includes(late.t), 'and not recorded');
  },
);

t.test(
  'a renewal while the engine’s take is unreported moves the others, never re-arms the taken port',
  async (t) => {
    const { dp, syn } = await armed(t);
    const late = dp.takePooled(syn(50001), false)!;
    const other = [...dp.armed.values()][0]!.t;
    await until('a KEEPALIVE answered: the reservations renewed', () =>
      dp.renewed.some((r) => r.t === other && r.ok),
    );
    t.same(
      dp.renewed.filter((r) => r.t === late.t),
      [{ t: late.t, ok: false }],
      'the taken port’s renewal was refused by the engine, once',
    );
    t.notOk(dp.armed.has(`6/${late.t}`), 'the taken port is not pooled again');
    late.emit();
    t.same(dp.removed, [], 'its flow goes on');
  },
);

t.test(
  'after a crash, no pooled port of the journal is handed out again: released, the pool refilled',
  async (t) => {
    const first = await armed(t);
    // the engine started a connection and the agent was killed before its event was handled:
    // the journal still lists the port in the pool
    const lost = first.dp.takePooled(first.syn(50001), false)!;
    const journaled = [...first.dp.armed.values()].map((p) => p.t).concat(lost.t);
    const stateDir = join(mkdtempSync(join(tmpdir(), 'gsra-agent-killed-')), 'state');
    cpSync(first.stateDir, stateDir, { recursive: true });
    for (const p of first.gw.peers) first.gw.muted.add(p);
    const second = await setup(t, { gw: first.gw, stateDir });
    await until('a fresh pool armed', () => second.dp.armed.size > 0);
    const now = [...second.dp.armed.values()].map((p) => p.t);
    t.notOk(
      now.some((p) => journaled.includes(p)),
      `none of the journal's pooled ports (${journaled.join(', ')}) is armed again`,
    );
    second.dp.emit({ kind: 'held', ...second.syn(50002) });
    await until('the held connection installed', () => second.dp.added.some((f) => f.s === 50002));
    t.notOk(journaled.includes(second.dp.added.find((f) => f.s === 50002)!.t), 'nor used by the daemon');
  },
);

t.test(
  'a name whose VIN was given to another name: its ports are withdrawn, then armed for its new VIN',
  async (t) => {
    const dp = new RecordingDataPlane();
    const vins = new Map([['intra1', '198.19.224.5']]);
    const armedPorts = new ArmedPorts(dp, '203.0.113.1', (n) => vins.get(n));
    const keys = { enToGw: {}, gwToEn: {} } as unknown as protocol.FlowKeys;
    const port = { inName: 'intra1', proto: 6 as const, t: 40001, serial: 1, keys, expiresAt: 1_000_000 };
    const session = { group: 'sales', up: true, control: { session: 'aa', pooledPorts: () => [port] } };
    const sessions = [session] as unknown as Session[];
    armedPorts.sync(sessions, 0);
    t.equal(dp.armed.get('6/40001')?.vin, '198.19.224.5');
    vins.delete('intra1'); // evicted: the VIN may now be another name's
    armedPorts.sync(sessions, 0);
    t.notOk(dp.armed.has('6/40001'), 'withdrawn before the VIN can reach another name');
    vins.set('intra1', '198.19.224.9');
    armedPorts.sync(sessions, 0);
    t.equal(dp.armed.get('6/40001')?.vin, '198.19.224.9', 'armed again for its new VIN');
    session.up = false;
    armedPorts.sync(sessions, 0);
    t.equal(dp.armed.size, 0, 'a session that is down has nothing armed');
  },
);
