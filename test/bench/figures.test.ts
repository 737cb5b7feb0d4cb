// The JSON line shape of bench-results/latest.jsonl: what a well-formed figure is, how a figure
// measured over runs is built, and that a malformed one is refused before it reaches the file.
import t from 'tap';
import { figureLine, figureProblems, fromRuns, parseFigureLines, single, skipped, find } from './figures.ts';

t.test('a figure over runs carries the median, the runs in order and their range', async (t) => {
  const f = fromRuns({ case: 'gsra', metric: 'tcp_gbps', dir: 'en-in', streams: 1 }, [1.0512, 0.98, 1.0233]);
  t.same(f, {
    case: 'gsra',
    metric: 'tcp_gbps',
    dir: 'en-in',
    streams: 1,
    value: 1.02,
    runs: [1.05, 0.98, 1.02],
    min: 0.98,
    max: 1.05,
  });
});

t.test('a JSON line puts case and metric first, then the keys, then value and runs', async (t) => {
  const f = fromRuns({ streams: 4, metric: 'tcp_gbps', dir: 'in-en', case: 'openvpn' }, [0.5]);
  t.equal(
    figureLine(f),
    '{"case":"openvpn","metric":"tcp_gbps","dir":"in-en","streams":4,"value":0.5,"runs":[0.5],"min":0.5,"max":0.5}',
  );
});

t.test('lines written are lines read back', async (t) => {
  const figs = [
    fromRuns({ case: 'plain', metric: 'udp_pps', dir: 'en-in', size: 64 }, [50100, 49000, 52000], 4),
    single({ case: 'gsra', metric: 'connect_first_byte_p50_ms', conn: 'first' }, 2.345, { n: 100 }),
    skipped({ case: 'gsra-compat', metric: 'tcp_gbps', dir: 'en-in', streams: 1 }, 'not offered'),
  ];
  const text = figs.map(figureLine).join('\n') + '\n';
  t.same(parseFigureLines(text), figs);
});

t.test('malformed figures are refused with the reason', async (t) => {
  const ok = { case: 'gsra', metric: 'tcp_gbps', value: 1 };
  t.same(figureProblems(ok), []);
  t.match(figureProblems({ ...ok, case: 'ipsec' }), [/bad case ipsec/]);
  t.match(figureProblems({ ...ok, metric: 'TcpGbps' }), [/bad metric/]);
  t.match(figureProblems({ ...ok, dir: 'up' }), [/bad dir/]);
  t.match(figureProblems({ ...ok, streams: 0 }), [/bad streams/]);
  t.match(figureProblems({ ...ok, value: NaN }), [/bad value/]);
  t.match(figureProblems({ ...ok, value: null }), [/without a reason/]);
  t.match(figureProblems({ ...ok, skipped: 'x' }), [/a value and skipped/]);
  t.match(figureProblems({ ...ok, gbps: 1 }), [/unknown field gbps/]);
  t.match(figureProblems({ ...ok, runs: [1, 2] }), [/without min and max/]);
  t.match(figureProblems({ ...ok, runs: [1, 2], min: 1, max: 3 }), [/do not match/]);
  t.match(figureProblems({ ...ok, value: 5, runs: [1, 2], min: 1, max: 2 }), [/outside the range/]);
  t.throws(() => figureLine({ ...ok, case: 'ipsec' } as never), /bad case/);
  t.throws(() => parseFigureLines('{"case":"gsra","metric":"x"}\n'), /line 1: bad value/);
});

t.test('find matches every key field, absent ones included', async (t) => {
  const a = single({ case: 'gsra', metric: 'dns_p50_ms', conn: 'later' }, 1);
  const b = single({ case: 'gsra', metric: 'dns_p50_ms', conn: 'first' }, 2);
  const c = single({ case: 'gsra', metric: 'dns_p50_ms' }, 3);
  t.equal(find([a, b, c], { case: 'gsra', metric: 'dns_p50_ms', conn: 'first' }), b);
  t.equal(find([a, b, c], { case: 'gsra', metric: 'dns_p50_ms' }), c);
  t.equal(find([a, b], { case: 'plain', metric: 'dns_p50_ms' }), undefined);
});
