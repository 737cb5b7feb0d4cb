// The one-screen summary: the path comparison as a table (median of the runs, cases side by
// side) with the same-run ratios GSRA/wireguard-go, GSRA/OpenVPN and GSRA/ceiling (the ceiling
// is plain-nooffload: what a per-segment path carries on these links), then connection setup,
// concurrency, the gateway's cost and the engine. Pure (test/bench/summary.test.ts).
import { find, type CaseName, type Dir, type Figure, type FigureKey } from './figures.ts';
import { ratio } from './stats.ts';

const COLS: { c: CaseName; head: string }[] = [
  { c: 'plain', head: 'plain' },
  { c: 'plain-nooffload', head: 'ceiling' },
  { c: 'wireguard-go', head: 'wg-go' },
  { c: 'openvpn', head: 'openvpn' },
  { c: 'gsra', head: 'gsra' },
  { c: 'gsra-compat', head: 'compat' },
];
const RATIOS: { c: CaseName; head: string }[] = [
  { c: 'wireguard-go', head: '/wg-go' },
  { c: 'openvpn', head: '/ovpn' },
  { c: 'plain-nooffload', head: '/ceil' },
];

export interface Row {
  label: string;
  key: Omit<FigureKey, 'case'>;
  /** Divide values by this for display (e.g. 1000 for kpps). */
  scale?: number;
}

/** The rows of the comparison table, in order. */
export function comparisonRows(): Row[] {
  const rows: Row[] = [];
  const dirs: Dir[] = ['en-in', 'in-en'];
  for (const streams of [1, 4]) {
    for (const dir of dirs)
      rows.push({ label: `TCP Gbit/s ${dir} x${streams}`, key: { metric: 'tcp_gbps', dir, streams } });
  }
  for (const size of [64, 1400]) {
    for (const dir of dirs)
      rows.push({ label: `UDP kpps ${dir} ${size}B`, key: { metric: 'udp_pps', dir, size }, scale: 1000 });
  }
  for (const size of [64, 1400]) {
    for (const dir of dirs)
      rows.push({ label: `UDP loss % ${dir} ${size}B`, key: { metric: 'udp_loss_pct', dir, size } });
  }
  for (const m of ['rr_p50_ms', 'rr_p99_ms', 'ping_p50_ms', 'ping_p99_ms']) {
    const [kind, p] = m.split('_');
    rows.push({ label: `${kind === 'rr' ? 'TCP req/resp' : 'ping'} ${p} ms`, key: { metric: m } });
  }
  return rows;
}

/** A number in at most 5 characters where possible: 3 significant digits, no exponent. */
export function fmt(x: number | null | undefined): string {
  if (x == null) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return String(Math.round(x));
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function value(figs: readonly Figure[], c: CaseName, key: Omit<FigureKey, 'case'>): number | null {
  return find(figs, { ...key, case: c } as FigureKey)?.value ?? null;
}

export function comparisonTable(figs: readonly Figure[]): string[] {
  const rows = comparisonRows();
  const present = COLS.filter(({ c }) => rows.some((r) => value(figs, c, r.key) !== null));
  const w = 26;
  const lines = [
    ['', ...present.map((p) => p.head), '|', ...RATIOS.map((r) => `gsra${r.head}`)]
      .map((s, i) => (i === 0 ? s.padEnd(w) : s.padStart(s === '|' ? 2 : i > present.length + 1 ? 11 : 9)))
      .join(''),
  ];
  for (const row of rows) {
    const vals = present.map(({ c }) => value(figs, c, row.key));
    if (vals.every((v) => v === null)) continue;
    const s = row.scale ?? 1;
    const g = value(figs, 'gsra', row.key);
    const rs = RATIOS.map(({ c }) => ratio(g, value(figs, c, row.key)));
    lines.push(
      [
        row.label.padEnd(w),
        ...vals.map((v) => fmt(v === null ? null : v / s).padStart(9)),
        ' |',
        ...rs.map((r) => fmt(r).padStart(11)),
      ].join(''),
    );
  }
  return lines.length > 1 ? lines : [];
}

function line(figs: readonly Figure[], label: string, parts: [string, FigureKey][]): string | null {
  const got = parts.map(([n, k]) => [n, find(figs, k)?.value ?? null] as const).filter(([, v]) => v !== null);
  if (!got.length) return null;
  return `${label}: ${got.map(([n, v]) => `${n} ${fmt(v)}`).join(', ')}`;
}

export function summary(figs: readonly Figure[], meta: Record<string, unknown>): string {
  const timing = meta.timing as { runs?: number } | undefined;
  const la = (k: string) => ((meta[k] as number[] | undefined) ?? []).join(' ');
  const out = [
    `GSRA bench ${String(meta.started ?? '').slice(0, 16)}Z, ${meta.quick ? 'QUICK, ' : ''}${timing?.runs ?? '?'} run(s) per figure (median), ` +
      `${meta.minutes ?? '?'} min, load ${la('loadavg_start')} -> ${la('loadavg_end')}`,
    'ratios: GSRA value / peer value, same run (throughput: higher is better; loss and latency: lower is better)',
    '',
    ...comparisonTable(figs),
  ];
  const skippedCases = [
    ...new Set(figs.filter((f) => f.value === null && f.case === 'gsra-compat').map((f) => f.skipped)),
  ];
  for (const s of skippedCases)
    out.push(`gsra-compat: skipped: ${String(s).split(':')[0]} (latest.jsonl says why)`);
  const setup: (string | null)[] = [
    line(figs, 'connect->first byte p50 ms', [
      ['gsra first', { case: 'gsra', metric: 'connect_first_byte_p50_ms', conn: 'first' }],
      ['gsra later', { case: 'gsra', metric: 'connect_first_byte_p50_ms', conn: 'later' }],
      ['plain', { case: 'plain', metric: 'connect_first_byte_p50_ms' }],
    ]),
    line(figs, 'connect->first byte p99 ms', [
      ['gsra first', { case: 'gsra', metric: 'connect_first_byte_p99_ms', conn: 'first' }],
      ['gsra later', { case: 'gsra', metric: 'connect_first_byte_p99_ms', conn: 'later' }],
      ['plain', { case: 'plain', metric: 'connect_first_byte_p99_ms' }],
    ]),
    line(figs, 'name lookup p50/p99 ms', [
      ['agent fresh p50', { case: 'gsra', metric: 'dns_p50_ms', conn: 'first' }],
      ['agent later p50', { case: 'gsra', metric: 'dns_p50_ms', conn: 'later' }],
      ['resolver p50', { case: 'plain', metric: 'dns_p50_ms' }],
      ['agent later p99', { case: 'gsra', metric: 'dns_p99_ms', conn: 'later' }],
      ['resolver p99', { case: 'plain', metric: 'dns_p99_ms' }],
    ]),
    line(figs, 'concurrent connections (all done, ms)', [
      ['gsra', { case: 'gsra', metric: 'concurrent_total_ms' }],
      ['plain', { case: 'plain', metric: 'concurrent_total_ms' }],
      ['gsra failed', { case: 'gsra', metric: 'concurrent_failed' }],
      ['gsra failed at once again', { case: 'gsra', metric: 'concurrent_repeat_failed' }],
      ['plain failed at once again', { case: 'plain', metric: 'concurrent_repeat_failed' }],
    ]),
    line(figs, 'gateway', [
      ['logins/s', { case: 'gateway', metric: 'logins_per_s', users: 10_000 }],
      ['reserved ports/s', { case: 'gateway', metric: 'reservations_per_s', users: 10_000 }],
      ['(RESERVE of 16)', { case: 'gateway', metric: 'reservations_batch16_per_s', users: 10_000 }],
      ['MiB@10k users', { case: 'gateway', metric: 'rss_mib', users: 10_000 }],
      ['MiB@100k flows', { case: 'gateway', metric: 'rss_mib', flows: 100_000 }],
      ['MiB@1M flows', { case: 'gateway', metric: 'rss_mib', flows: 1_000_000 }],
      ['policy refresh ms@10k', { case: 'gateway', metric: 'policy_refresh_ms', users: 10_000 }],
    ]),
    line(figs, 'engine in memory, native Gbit/s (agent out + gateway in, one core)', [
      ['64B', { case: 'engine', metric: 'native_gbps', size: 64 }],
      ['1460B', { case: 'engine', metric: 'native_gbps', size: 1460 }],
    ]),
  ];
  const rest = setup.filter((s): s is string => s !== null);
  if (rest.length) out.push('', ...rest);
  const errors = (meta.errors as { step: string; error: string }[] | undefined) ?? [];
  if (errors.length) {
    out.push('', `${errors.length} step(s) FAILED:`);
    for (const e of errors.slice(0, 8)) out.push(`  ${e.step}: ${e.error.split('\n')[0]!.slice(0, 150)}`);
  }
  return out.join('\n') + '\n';
}
