// The seeded randomness of every fuzz test in this package: a small PRNG (mulberry32) whose seed
// is printed as a test comment, so a failing run can be replayed exactly with
// GSRA_FUZZ_SEED=<seed> npx tap <file>. Without the variable each run picks a fresh seed.
import { randomInt } from 'node:crypto';

export interface FuzzRandom {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** n random bytes. */
  bytes(n: number): Buffer;
}

/** The seed a fuzz run uses: GSRA_FUZZ_SEED when set (a replay), else a fresh one. */
export function fuzzSeed(): number {
  const env = process.env.GSRA_FUZZ_SEED;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) >>> 0 : randomInt(0, 2 ** 32);
}

/** mulberry32: floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function fuzzRandom(t: { comment(...args: unknown[]): void }, what: string): FuzzRandom {
  const seed = fuzzSeed();
  t.comment(`${what}: seed ${seed} (replay with GSRA_FUZZ_SEED=${seed})`);
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { seed, next, int, bytes };
}
