// Statistics the benchmark reports: medians and ranges over runs, percentiles over samples.
// Pure functions; test/bench/stats.test.ts checks them against hand-computed values.

function finite(xs: readonly number[], what: string): number[] {
  const bad = xs.find((x) => !Number.isFinite(x));
  if (bad !== undefined) throw new Error(`${what}: not a finite number: ${bad}`);
  return [...xs].sort((a, b) => a - b);
}

/**
 * The p-th percentile (0 <= p <= 100) by linear interpolation between closest ranks (the
 * "type 7" definition of R and numpy's default): p50 of [1,2,3,4] is 2.5, p99 of 100 samples
 * 1..100 is 99.01. Throws on an empty list: a figure without samples is a bug, not a zero.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile: p must be within 0..100, got ${p}`);
  const s = finite(xs, 'percentile');
  if (!s.length) throw new Error('percentile of no samples');
  const h = ((s.length - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return s[lo]! + (s[hi]! - s[lo]!) * (h - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export interface Spread {
  /** The median of the runs: the figure reported. */
  value: number;
  min: number;
  max: number;
}

/** Median and range of a figure measured once per run. */
export function spread(runs: readonly number[]): Spread {
  const s = finite(runs, 'spread');
  if (!s.length) throw new Error('spread of no runs');
  return { value: median(s), min: s[0]!, max: s[s.length - 1]! };
}

/** Rounds to `digits` significant digits (figures are noisy; more digits would only mislead). */
export function sig(x: number, digits = 3): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  return Number(x.toPrecision(digits));
}

/** a / b, or null when either is missing or b is 0 (a ratio against nothing is not a figure). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return a / b;
}
