// `npm run bench` options: which cases and groups run, how long, and clear errors for bad input.
import t from 'tap';
import { parseBenchArgs, UsageError, FULL, QUICK } from './args.ts';
import { CASES } from './figures.ts';

t.test('no options: every case, every group but the profile, the full timing', async (t) => {
  const o = parseBenchArgs([]);
  t.same(o.cases, [...CASES]);
  t.same(o.groups, ['tcp', 'udp', 'latency', 'setup', 'concurrent', 'gateway', 'engine']);
  t.same(o.timing, FULL);
  t.equal(o.timing.runs, 3);
  t.equal(o.outDir, 'bench-results');
  t.equal(o.maxMinutes, 30);
});

t.test('--quick: one run and shorter measurements', async (t) => {
  const o = parseBenchArgs(['--quick']);
  t.same(o.timing, QUICK);
  t.equal(o.timing.runs, 1);
  t.ok(o.timing.tcpSeconds < FULL.tcpSeconds);
  t.equal(o.maxMinutes, 10);
});

t.test('--only with cases narrows the paths, with groups the figures, both combine', async (t) => {
  const a = parseBenchArgs(['--only', 'gsra,openvpn']);
  t.same(a.cases, ['openvpn', 'gsra'], 'in the canonical order');
  t.ok(a.groups.includes('tcp') && a.groups.includes('gateway'));
  const b = parseBenchArgs(['--only', 'tcp']);
  t.same(b.cases, [...CASES]);
  t.same(b.groups, ['tcp']);
  const c = parseBenchArgs(['--only', 'wireguard-go', '--only', 'latency']);
  t.same(c.cases, ['wireguard-go']);
  t.same(c.groups, ['latency']);
});

t.test('groups that measure none of the chosen cases are dropped', async (t) => {
  const o = parseBenchArgs(['--only', 'openvpn']);
  t.notOk(o.groups.includes('setup'), 'setup compares gsra and plain only');
  t.notOk(o.groups.includes('gateway'));
  t.throws(() => parseBenchArgs(['--only', 'openvpn,gateway']), /nothing to run/);
});

t.test('the profile runs only when asked for', async (t) => {
  t.notOk(parseBenchArgs([]).groups.includes('profile'));
  t.ok(parseBenchArgs(['--profile']).groups.includes('profile'));
  t.same(parseBenchArgs(['--only', 'profile']).groups, ['profile']);
});

t.test('--runs and --max-minutes are checked', async (t) => {
  t.equal(parseBenchArgs(['--runs', '5']).timing.runs, 5);
  t.equal(parseBenchArgs(['--quick', '--runs', '2']).timing.runs, 2);
  t.throws(() => parseBenchArgs(['--runs', '0']), /--runs must be 1\.\.9/);
  t.throws(() => parseBenchArgs(['--runs', 'two']), /--runs must be 1\.\.9/);
  t.equal(parseBenchArgs(['--max-minutes', '12']).maxMinutes, 12);
  t.throws(() => parseBenchArgs(['--max-minutes', '-1']), /--max-minutes/);
});

t.test('unknown names and options are usage errors that list what is known', async (t) => {
  t.throws(() => parseBenchArgs(['--only', 'ipsec']), UsageError);
  t.throws(() => parseBenchArgs(['--only', 'lab']), /unknown case or group: lab[\s\S]*cases: +plain/);
  t.throws(() => parseBenchArgs(['--fast']), UsageError);
  t.throws(() => parseBenchArgs(['stray']), UsageError);
});

t.test('--resummarize measures nothing and works on --out', async (t) => {
  const o = parseBenchArgs(['--resummarize', '--out', 'bench-results/reference']);
  t.equal(o.resummarize, true);
  t.equal(o.outDir, 'bench-results/reference');
  t.equal(parseBenchArgs([]).resummarize, false);
});
