// The benchmark's statistics: percentiles by linear interpolation, median and range over runs,
// significant-digit rounding and ratios that refuse to divide by nothing.
import t from 'tap';
import { percentile, median, spread, sig, ratio } from './stats.ts';

t.test('percentile interpolates between closest ranks (type 7)', async (t) => {
  t.equal(percentile([4, 1, 3, 2], 50), 2.5, 'p50 of 1..4 is halfway between 2 and 3');
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  t.equal(percentile(hundred, 99), 99.01);
  t.equal(percentile(hundred, 0), 1);
  t.equal(percentile(hundred, 100), 100);
  t.equal(percentile([7], 99), 7, 'one sample is every percentile');
});

t.test('percentile does not reorder its input', async (t) => {
  const xs = [3, 1, 2];
  percentile(xs, 50);
  t.same(xs, [3, 1, 2]);
});

t.test('percentile refuses empty input, bad p and non-finite samples', async (t) => {
  t.throws(() => percentile([], 50), /no samples/);
  t.throws(() => percentile([1], 101), /0\.\.100/);
  t.throws(() => percentile([1], -1), /0\.\.100/);
  t.throws(() => percentile([1, NaN], 50), /not a finite number/);
  t.throws(() => percentile([1, Infinity], 50), /not a finite number/);
});

t.test('median of an odd and an even number of runs', async (t) => {
  t.equal(median([0.9, 1.2, 1.0]), 1.0);
  t.equal(median([1, 2, 10, 20]), 6);
});

t.test('spread is the median with the smallest and largest run', async (t) => {
  t.same(spread([1.05, 0.95, 1.02]), { value: 1.02, min: 0.95, max: 1.05 });
  t.throws(() => spread([]), /no runs/);
});

t.test('sig keeps significant digits, not decimals', async (t) => {
  t.equal(sig(16.5432), 16.5);
  t.equal(sig(0.0012345), 0.00123);
  t.equal(sig(123456), 123000);
  t.equal(sig(123456, 6), 123456);
  t.equal(sig(0), 0);
});

t.test('ratio is null when either side is missing or the divisor is zero', async (t) => {
  t.equal(ratio(1, 4), 0.25);
  t.equal(ratio(1, 0), null);
  t.equal(ratio(null, 2), null);
  t.equal(ratio(2, undefined), null);
  t.equal(ratio(NaN, 2), null);
});
