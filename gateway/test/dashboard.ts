// Reading the Grafana dashboard's PromQL for the metric names it queries, and a Prometheus text
// exposition for the names it exports (shared by gateway/test/dashboard.test.ts and the e2e test).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DASHBOARD = join(dirname(fileURLToPath(import.meta.url)), '..', 'grafana', 'gsra-gateway.json');

/** Words in PromQL that are not metric names when they stand alone. */
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression (or Grafana's label_values(...)) reads. */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  // {__name__="x"} names a metric inside a selector.
  for (const m of expr.matchAll(/__name__\s*=\s*"([^"]+)"/g)) names.add(m[1]!);
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables
    .replace(/\boffset\s+-?\d+\w*/g, ' ');
  // label_values(metric, label): the second argument is a label.
  const lv = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,/.exec(bare);
  if (lv) return [...names, lv[1]!];
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, word, call] = m;
    if (call || KEYWORDS.has(word!.toLowerCase())) continue; // a function, or a keyword
    names.add(word!);
  }
  return [...names];
}

/** Every PromQL expression of the dashboard: panel targets (rows included) and template queries. */
export function dashboardExpressions(file = DASHBOARD): string[] {
  const d = JSON.parse(readFileSync(file, 'utf8')) as {
    panels: { targets?: { expr?: string }[]; panels?: { targets?: { expr?: string }[] }[] }[];
    templating: { list: { type: string; query?: unknown; definition?: string }[] };
  };
  const out: string[] = [];
  const panels = d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const p of panels) for (const tg of p.targets ?? []) if (tg.expr) out.push(tg.expr);
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    if (q) out.push(q);
  }
  return out;
}

/**
 * The sample names a Prometheus text exposition offers: each `# TYPE` family (counters also under
 * their name, histograms and summaries with their _bucket/_sum/_count series) and every sample.
 */
export function exportedMetrics(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      out.add(name!);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample) out.add(sample[1]!);
  }
  return out;
}
