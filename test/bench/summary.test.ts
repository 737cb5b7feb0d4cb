// The one-screen summary: cases side by side, the same-run ratios GSRA/wireguard-go, GSRA/OpenVPN
// and GSRA/ceiling, and the other figures on their own lines.
import t from 'tap';
import { summary, comparisonTable, fmt } from './summary.ts';
import { fromRuns, single, skipped, type Figure } from './figures.ts';

const tcp = (c: Figure['case'], v: number) =>
  fromRuns({ case: c, metric: 'tcp_gbps', dir: 'en-in', streams: 1 }, [v]);
const FIGS: Figure[] = [
  tcp('plain', 16.5),
  tcp('plain-nooffload', 2.5),
  tcp('wireguard-go', 0.4),
  tcp('openvpn', 0.5),
  tcp('gsra', 1.0),
  skipped({ case: 'gsra-compat', metric: 'tcp_gbps', dir: 'en-in', streams: 1 }, 'not offered end to end'),
  fromRuns({ case: 'gsra', metric: 'rr_p50_ms' }, [0.44]),
  fromRuns({ case: 'openvpn', metric: 'rr_p50_ms' }, [0.4]),
  single({ case: 'gsra', metric: 'connect_first_byte_p50_ms', conn: 'later' }, 2.8),
  single({ case: 'plain', metric: 'connect_first_byte_p50_ms' }, 0.9),
];

t.test('one row per measured figure with the three ratios', async (t) => {
  const lines = comparisonTable(FIGS);
  t.match(lines[0], /plain +ceiling +wg-go +openvpn +gsra +\| +gsra\/wg-go +gsra\/ovpn +gsra\/ceil/);
  t.notMatch(lines[0], /compat/, 'a case with no value gets no column');
  const row = lines.find((l) => l.startsWith('TCP Gbit/s en-in x1'))!;
  t.match(row, /16\.5 +2\.50 +0\.40 +0\.50 +1\.00 +\| +2\.50 +2\.00 +0\.40$/);
  const rr = lines.find((l) => l.startsWith('TCP req/resp p50'))!;
  t.match(rr, /\| +- +1\.10 +-$/, 'a ratio against a missing figure is "-"');
  t.notOk(
    lines.some((l) => l.startsWith('UDP')),
    'rows with no figure are left out',
  );
});

t.test('the summary names the run, the skipped case and the setup figures', async (t) => {
  const s = summary(FIGS, {
    started: '2026-11-29T10:00:00.000Z',
    minutes: 14.2,
    timing: { runs: 3 },
    loadavg_start: [1.5],
    loadavg_end: [2],
  });
  t.match(s, /^GSRA bench 2026-11-29T10:00Z, 3 run\(s\) per figure \(median\), 14\.2 min, load 1\.5 -> 2/);
  t.match(s, /gsra-compat: skipped: not offered end to end/);
  t.match(s, /connect->first byte p50 ms: gsra later 2\.80, plain 0\.90/);
  t.ok(s.split('\n').length < 45, 'fits one screen');
});

t.test('failed steps are listed', async (t) => {
  const s = summary(FIGS, {
    errors: [{ step: 'openvpn udp en-in 64B run 2', error: 'iperf3: boom\nstack' }],
  });
  t.match(s, /1 step\(s\) FAILED:\n {2}openvpn udp en-in 64B run 2: iperf3: boom\n/);
});

t.test('numbers in at most 5 characters: 3 significant digits from 1 up, 2 below', async (t) => {
  t.same([16.54, 2.5, 0.0756, 123.4, 51234, 0, null].map(fmt), [
    '16.5',
    '2.50',
    '0.076',
    '123',
    '51234',
    '0',
    '-',
  ]);
});

t.test('a case with figures outside the table (e.g. setup) gets no column', async (t) => {
  const lines = comparisonTable([
    ...FIGS.filter((f) => f.case !== 'plain'),
    single({ case: 'plain', metric: 'dns_p50_ms' }, 0.2),
  ]);
  t.notMatch(lines[0], /plain +ceiling/);
  t.match(lines[0], /ceiling/);
});
