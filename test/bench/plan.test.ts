// The order of the comparison: every case gets every measurement `runs` times, cases alternate
// within each measurement, no case is always first, and what a case cannot carry is left out.
import t from 'tap';
import { measurements, schedule, stepSeconds, label, type Measurement } from './plan.ts';
import { FULL } from './args.ts';
import type { CaseName } from './figures.ts';

const CASES: CaseName[] = ['plain', 'plain-nooffload', 'wireguard-go', 'openvpn', 'gsra'];
const all = () => null;

t.test('measurements: 4 TCP, 4 UDP, ping and rr, by group', async (t) => {
  t.same(measurements(['tcp', 'udp', 'latency']).map(label), [
    'tcp en-in x1',
    'tcp in-en x1',
    'tcp en-in x4',
    'tcp in-en x4',
    'udp en-in 64B',
    'udp in-en 64B',
    'udp en-in 1400B',
    'udp in-en 1400B',
    'ping',
    'rr',
  ]);
  t.same(
    measurements(['latency']).map((m) => m.kind),
    ['ping', 'rr'],
  );
  t.same(measurements(['setup', 'gateway']), []);
});

t.test('every case runs every measurement exactly `runs` times', async (t) => {
  const ms = measurements(['tcp', 'udp', 'latency']);
  const steps = schedule(CASES, ms, 3, all);
  t.equal(steps.length, CASES.length * ms.length * 3);
  for (const c of CASES) {
    for (const m of ms) {
      const n = steps.filter((s) => s.case === c && label(s.m) === label(m)).length;
      t.equal(n, 3, `${c} ${label(m)}`);
    }
  }
});

t.test(
  'cases alternate: within a run a measurement is taken for every case before the next one',
  async (t) => {
    const ms = measurements(['tcp']);
    const steps = schedule(CASES, ms, 2, all);
    for (let i = 0; i < steps.length; i += CASES.length) {
      const block = steps.slice(i, i + CASES.length);
      t.equal(new Set(block.map((s) => label(s.m))).size, 1, 'one measurement per block');
      t.same(new Set(block.map((s) => s.case)), new Set(CASES), 'every case in the block');
      t.equal(new Set(block.map((s) => s.run)).size, 1);
    }
    t.same(
      steps.map((s) => s.run),
      [...Array(20).fill(0), ...Array(20).fill(1)],
      'runs are round-robin: all of run 1, then run 2',
    );
  },
);

t.test('the first case of a block rotates, so no case is always first', async (t) => {
  const steps = schedule(CASES, measurements(['tcp', 'udp']), 3, all);
  const firsts = new Set<string>();
  for (let i = 0; i < steps.length; i += CASES.length) firsts.add(steps[i]!.case);
  t.same(firsts, new Set(CASES));
});

t.test('a measurement a case cannot carry is not scheduled for it', async (t) => {
  const ms: Measurement[] = [{ kind: 'ping' }, { kind: 'rr' }];
  const steps = schedule(CASES, ms, 2, (c, m) => (c === 'gsra' && m.kind === 'ping' ? 'no ICMP' : null));
  t.notOk(steps.some((s) => s.case === 'gsra' && s.m.kind === 'ping'));
  t.equal(steps.filter((s) => s.case === 'gsra' && s.m.kind === 'rr').length, 2);
  t.equal(steps.length, 2 * (CASES.length - 1) + 2 * CASES.length);
});

t.test('the default full comparison fits the time budget (about 15 min for the whole bench)', async (t) => {
  const steps = schedule(CASES, measurements(['tcp', 'udp', 'latency']), FULL.runs, (c, m) =>
    c === 'gsra' && m.kind === 'ping' ? 'x' : null,
  );
  const minutes = steps.reduce((s, st) => s + stepSeconds(st.m, FULL), 0) / 60;
  t.ok(minutes < 11, `${minutes.toFixed(1)} min of measurement`);
  t.ok(minutes > 5, 'and is not trivially short either');
});
