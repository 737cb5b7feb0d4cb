// A coverage-guided fuzzer for GSRA's parsers, on V8's own block coverage (node:inspector,
// Profiler.takePreciseCoverage). Why not Jazzer.js: its 4.0.0 addon is built against glibc 2.38
// (Debian 12 has 2.36) and 2.1.0 downloads its addon from GitHub at install; neither runs here
// (docs/security.md, "Fuzzing"). The loop is libFuzzer's: take an input from the corpus, mutate
// it (stacked byte-level mutations, splices, dictionary tokens), run the target, and keep the
// input if it reached a block (or a block's hit-count bucket) no earlier input reached. A crash
// is any exception the target does not declare as its own rejection, or a broken invariant.
// Seeded (mulberry32) and printed: a run is reproducible with the same seed, corpus and time.
import { Session } from 'node:inspector';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../../common/test/fuzz-random.ts';

export interface Target {
  name: string;
  /** Runs one input; throws only on a crash (a rejection the target expects is not one). */
  run(data: Buffer): void;
  /** Substrings of the script URLs whose coverage guides the fuzzer. */
  files: string[];
  /** Byte strings worth inserting (magic numbers, type codes, DNS pointers...). */
  dictionary: Buffer[];
  /** Inputs to start from when the corpus directory is empty. */
  seeds(): Buffer[];
  maxLen: number;
}

export interface FuzzResult {
  target: string;
  seed: number;
  execs: number;
  corpus: number;
  features: number;
  newInputs: number;
  crashes: Array<{ input: string; error: string }>;
}

function rng(seed: number) {
  const next = mulberry32(seed);
  return { next, int: (n: number) => Math.floor(next() * n) };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0xc0];
const bucket = (n: number) => (n <= 3 ? n : n <= 7 ? 4 : n <= 15 ? 5 : n <= 31 ? 6 : n <= 127 ? 7 : 8);

export class CoverageFuzzer {
  private readonly session = new Session();
  private readonly seen = new Set<string>();
  private readonly corpus: Buffer[] = [];

  constructor(
    private readonly target: Target,
    private readonly corpusDir: string,
  ) {
    this.session.connect();
    this.session.post('Profiler.enable');
    this.session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** The features (block, hit-count bucket) the last input reached; the counters are reset. */
  private features(): string[] {
    const out: string[] = [];
    this.session.post('Profiler.takePreciseCoverage', (err, res) => {
      if (err) throw err;
      for (const script of res.result) {
        if (!this.target.files.some((f) => script.url.includes(f))) continue;
        for (const fn of script.functions)
          for (const r of fn.ranges)
            if (r.count > 0) out.push(`${script.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`);
      }
    });
    return out;
  }

  /** Runs one input; returns whether it reached something new, or the crash it caused. */
  private exec(data: Buffer): { fresh: boolean; crash?: string } {
    let crash: string | undefined;
    try {
      this.target.run(data);
    } catch (e) {
      crash = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    let fresh = false;
    for (const f of this.features())
      if (!this.seen.has(f)) {
        this.seen.add(f);
        fresh = true;
      }
    return crash === undefined ? { fresh } : { fresh, crash };
  }

  private mutate(r: ReturnType<typeof rng>, input: Buffer): Buffer {
    let b = Buffer.from(input);
    const dict = this.target.dictionary;
    for (let k = 1 + r.int(6); k > 0; k--) {
      const at = b.length ? r.int(b.length) : 0;
      switch (r.int(9)) {
        case 0: // flip a bit
          if (b.length) b[at]! ^= 1 << r.int(8);
          break;
        case 1: // an interesting byte
          if (b.length) b[at] = INTERESTING[r.int(INTERESTING.length)]!;
          break;
        case 2: // a random byte
          if (b.length) b[at] = r.int(256);
          break;
        case 3: // insert random bytes
          b = Buffer.concat([
            b.subarray(0, at),
            Buffer.from(Array.from({ length: 1 + r.int(8) }, () => r.int(256))),
            b.subarray(at),
          ]);
          break;
        case 4: // delete a range
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(16))]);
          break;
        case 5: // a dictionary token, overwritten or inserted
          if (dict.length) {
            const tok = dict[r.int(dict.length)]!;
            b = r.int(2)
              ? Buffer.concat([b.subarray(0, at), tok, b.subarray(at + tok.length)])
              : Buffer.concat([b.subarray(0, at), tok, b.subarray(at)]);
          }
          break;
        case 6: // splice with another corpus entry
          if (this.corpus.length) {
            const o = this.corpus[r.int(this.corpus.length)]!;
            const from = r.int(o.length + 1);
            b = Buffer.concat([b.subarray(0, at), o.subarray(from, from + 1 + r.int(64))]);
          }
          break;
        case 7: // a 16-bit field to an edge value (lengths, counts, ports)
          if (b.length >= 2)
            b.writeUInt16BE([0, 1, 0xff, 0x100, 0x7fff, 0xffff][r.int(6)]!, r.int(b.length - 1));
          break;
        default: // truncate
          b = b.subarray(0, at);
      }
    }
    return b.length > this.target.maxLen ? b.subarray(0, this.target.maxLen) : b;
  }

  /** Fuzzes for `ms` (or `execs` runs, whichever comes first). With `save`, new inputs join the corpus directory. */
  run(o: { seed: number; ms: number; execs?: number; save?: boolean }): FuzzResult {
    const r = rng(o.seed);
    const files = existsSync(this.corpusDir) ? readdirSync(this.corpusDir).sort() : [];
    const start = [...this.target.seeds(), ...files.map((f) => readFileSync(join(this.corpusDir, f)))];
    const res: FuzzResult = {
      target: this.target.name,
      seed: o.seed,
      execs: 0,
      corpus: 0,
      features: 0,
      newInputs: 0,
      crashes: [],
    };
    const consider = (data: Buffer, initial: boolean) => {
      res.execs++;
      const x = this.exec(data);
      if (x.crash !== undefined) {
        if (res.crashes.length < 10) res.crashes.push({ input: data.toString('hex'), error: x.crash });
        return;
      }
      if (!x.fresh) return;
      this.corpus.push(data);
      if (!initial) {
        res.newInputs++;
        if (o.save) {
          mkdirSync(this.corpusDir, { recursive: true });
          const name = createHash('sha1').update(data).digest('hex').slice(0, 16);
          writeFileSync(join(this.corpusDir, name), data);
        }
      }
    };
    for (const s of start) consider(s, true);
    const end = Date.now() + o.ms;
    // At least one batch of mutations, however slow the machine, so every run fuzzes something.
    let batches = 0;
    while (
      (batches++ === 0 || Date.now() < end) &&
      (o.execs === undefined || res.execs < o.execs) &&
      this.corpus.length
    ) {
      for (let i = 0; i < 100; i++) consider(this.mutate(r, this.corpus[r.int(this.corpus.length)]!), false);
    }
    res.corpus = this.corpus.length;
    res.features = this.seen.size;
    return res;
  }
}
