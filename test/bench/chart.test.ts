// The SVG chart: one bar per figure, heights proportional within a panel, the range of the runs,
// the offload-on plain path clipped with its value, text escaped, and well-formed markup.
import t from 'tap';
import { chartSvg, niceMax, esc } from './chart.ts';
import { fromRuns, skipped, type Figure } from './figures.ts';

const tcp = (c: Figure['case'], runs: number[], dir: 'en-in' | 'in-en' = 'en-in') =>
  fromRuns({ case: c, metric: 'tcp_gbps', dir, streams: 1 }, runs);

function bars(svg: string): { x: number; y: number; h: number; title: string }[] {
  return [
    ...svg.matchAll(
      /<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="[^"]+"><title>([^<]*)<\/title>/g,
    ),
  ].map((m) => ({
    x: Number(m[1]),
    y: Number(m[2]),
    h: Number(m[3]),
    title: m[4]!,
  }));
}

t.test('one bar per figure with a value, none for skipped ones', async (t) => {
  const svg = chartSvg(
    [
      tcp('gsra', [1.0]),
      tcp('wireguard-go', [0.5]),
      skipped({ case: 'gsra-compat', metric: 'tcp_gbps', dir: 'en-in', streams: 1 }, 'no'),
    ],
    't',
  );
  const b = bars(svg);
  t.equal(b.length, 2);
  t.notMatch(svg, /GSRA compat/, 'no legend entry for a case without a value');
});

t.test('bar heights are proportional to the values within a panel', async (t) => {
  const b = bars(chartSvg([tcp('gsra', [1.0]), tcp('wireguard-go', [0.5]), tcp('openvpn', [0.25])], 't'));
  const h = Object.fromEntries(b.map((x) => [x.title.split(' ')[0], x.h]));
  t.equal(Math.round((h['wireguard-go']! / h.gsra!) * 100), 50);
  t.equal(Math.round((h.openvpn! / h.gsra!) * 100), 25);
});

t.test('the plain path far above the others is clipped at the top, with its value written', async (t) => {
  const svg = chartSvg([tcp('plain', [16.5]), tcp('gsra', [1.0]), tcp('plain-nooffload', [2.5])], 't');
  const b = bars(svg);
  const h = (c: string) => b.find((x) => x.title.startsWith(`${c} `))!.h;
  t.equal(h('gsra') / h('plain-nooffload'), 0.4, 'the others keep their proportions');
  const huge = bars(chartSvg([tcp('plain', [1650]), tcp('gsra', [1.0]), tcp('plain-nooffload', [2.5])], 't'));
  t.equal(
    huge.find((x) => x.title.startsWith('plain '))!.h,
    h('plain'),
    'plain stops at the top of the panel, however large',
  );
  t.ok(h('plain') > h('plain-nooffload'));
  t.match(svg, /16\.5↑/);
});

t.test('the range of the runs is drawn over the bar', async (t) => {
  const svg = chartSvg([tcp('gsra', [0.9, 1.0, 1.1])], 't');
  t.equal((svg.match(/stroke-width="1.5"/g) ?? []).length, 1);
});

t.test('well-formed: every element closed, text escaped', async (t) => {
  const svg = chartSvg(
    [tcp('gsra', [1]), fromRuns({ case: 'gsra', metric: 'rr_p50_ms' }, [0.4])],
    'a <b> & "c"',
  );
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /a &lt;b&gt; &amp; &quot;c&quot;/);
  const opens = (svg.match(/<(rect|text|title|svg)\b(?:[^>]*[^/])?>/g) ?? []).length;
  const closes = (svg.match(/<\/(rect|text|title|svg)>/g) ?? []).length;
  t.equal(opens, closes);
  t.match(svg, /Round-trip latency p50/);
});

t.test('axis maxima are 1, 2 or 5 times a power of ten', async (t) => {
  t.same([0.42, 1.1, 3, 7, 18, 0].map(niceMax), [0.5, 2, 5, 10, 20, 1]);
  t.equal(esc('<&>'), '&lt;&amp;&gt;');
});
