// The benchmark's output: one JSON object per figure, one per line of bench-results/latest.jsonl:
//   {"case":"gsra","metric":"tcp_gbps","dir":"en-in","streams":1,"value":1.02,"runs":[1.0,1.02,1.05],"min":1.0,"max":1.05}
// `metric` is snake_case and ends with its unit (_gbps, _pps, _pct, _ms, _mib, _per_s, ...). The
// keys that say what was measured (dir, streams, size, conn, users, flows) are optional and only
// present when they apply. A figure that could not be measured says so: value null and `skipped`
// with the reason (never a made-up 0).
import { sig, spread } from './stats.ts';

/** The paths a user could take from EN to IN, measured in the same lab, in the same run. */
export const CASES = ['plain', 'plain-nooffload', 'wireguard-go', 'openvpn', 'gsra', 'gsra-compat'] as const;
export type CaseName = (typeof CASES)[number];
/** Figures that belong to no path: the engine in memory, the gateway's cost per user and flow. */
export const OTHER_CASES = ['engine', 'gateway'] as const;
export type FigureCase = CaseName | (typeof OTHER_CASES)[number];

/** up = EN -> IN (en1 sends), down = IN -> EN. */
export type Dir = 'en-in' | 'in-en';
export const DIRS: readonly Dir[] = ['en-in', 'in-en'];

export interface FigureKey {
  case: FigureCase;
  metric: string;
  dir?: Dir;
  streams?: number;
  /** UDP datagram payload (bytes) or the engine's TCP payload. */
  size?: number;
  /** Connection setup: the first connection to an IN (full negotiation) or a later one. */
  conn?: 'first' | 'later';
  users?: number;
  flows?: number;
}

export interface Figure extends FigureKey {
  value: number | null;
  /** One value per run, in run order. */
  runs?: number[];
  min?: number;
  max?: number;
  /** Samples behind a percentile (e.g. 100 connections). */
  n?: number;
  /** Why there is no value. */
  skipped?: string;
}

const KEY_FIELDS = ['dir', 'streams', 'size', 'conn', 'users', 'flows'] as const;
const ALLOWED = new Set<string>([
  'case',
  'metric',
  ...KEY_FIELDS,
  'value',
  'runs',
  'min',
  'max',
  'n',
  'skipped',
]);
const METRIC_RE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

/** A figure measured once per run: value = median, with the runs and their range. */
export function fromRuns(key: FigureKey, runs: readonly number[], digits = 3): Figure {
  const s = spread(runs);
  return {
    ...key,
    value: sig(s.value, digits),
    runs: runs.map((r) => sig(r, digits)),
    min: sig(s.min, digits),
    max: sig(s.max, digits),
  };
}

/** A figure measured once (a single run, e.g. p50 over n samples). */
export function single(key: FigureKey, value: number, extra: { n?: number } = {}, digits = 3): Figure {
  return { ...key, value: sig(value, digits), ...extra };
}

export function skipped(key: FigureKey, why: string): Figure {
  return { ...key, value: null, skipped: why };
}

/** Every problem with the shape of a figure ([] when it is well formed). */
export function figureProblems(f: unknown): string[] {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return ['not an object'];
  const o = f as Record<string, unknown>;
  const p: string[] = [];
  for (const k of Object.keys(o)) if (!ALLOWED.has(k)) p.push(`unknown field ${k}`);
  if (![...CASES, ...OTHER_CASES].includes(o.case as FigureCase)) p.push(`bad case ${String(o.case)}`);
  if (typeof o.metric !== 'string' || !METRIC_RE.test(o.metric)) p.push(`bad metric ${String(o.metric)}`);
  if ('dir' in o && !DIRS.includes(o.dir as Dir)) p.push(`bad dir ${String(o.dir)}`);
  if ('conn' in o && o.conn !== 'first' && o.conn !== 'later') p.push(`bad conn ${String(o.conn)}`);
  for (const k of ['streams', 'size', 'users', 'flows', 'n'] as const) {
    if (k in o && !(Number.isInteger(o[k]) && (o[k] as number) > 0)) p.push(`bad ${k} ${String(o[k])}`);
  }
  if (o.value === null) {
    if (typeof o.skipped !== 'string' || !o.skipped) p.push('value null without a reason in skipped');
  } else if (typeof o.value !== 'number' || !Number.isFinite(o.value)) {
    p.push(`bad value ${String(o.value)}`);
  } else if ('skipped' in o) {
    p.push('a value and skipped at once');
  }
  if ('runs' in o) {
    const r = o.runs;
    if (!Array.isArray(r) || !r.length || r.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      p.push('bad runs');
    } else if (typeof o.min !== 'number' || typeof o.max !== 'number') {
      p.push('runs without min and max');
    } else if (Math.min(...r) !== o.min || Math.max(...r) !== o.max) {
      p.push('min/max do not match runs');
    } else if (typeof o.value === 'number' && (o.value < o.min || o.value > o.max)) {
      p.push('value outside the range of its runs');
    }
  }
  return p;
}

/** One JSON line, fields in a fixed order (case, metric, keys, value, runs, ...). */
export function figureLine(f: Figure): string {
  const problems = figureProblems(f);
  if (problems.length) throw new Error(`bad figure ${JSON.stringify(f)}: ${problems.join('; ')}`);
  const o: Record<string, unknown> = { case: f.case, metric: f.metric };
  for (const k of KEY_FIELDS) if (f[k] !== undefined) o[k] = f[k];
  o.value = f.value;
  for (const k of ['runs', 'min', 'max', 'n', 'skipped'] as const) if (f[k] !== undefined) o[k] = f[k];
  return JSON.stringify(o);
}

export function parseFigureLines(text: string): Figure[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      const f = JSON.parse(l) as unknown;
      const problems = figureProblems(f);
      if (problems.length) throw new Error(`line ${i + 1}: ${problems.join('; ')}`);
      return f as Figure;
    });
}

/** The figure with exactly this key (every key field equal, absent ones absent), if any. */
export function find(figs: readonly Figure[], key: FigureKey): Figure | undefined {
  return figs.find(
    (f) => f.case === key.case && f.metric === key.metric && KEY_FIELDS.every((k) => f[k] === key[k]),
  );
}
