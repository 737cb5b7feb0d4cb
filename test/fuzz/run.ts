// One fuzzing run in a process of its own (its coverage counters are the fuzzer's, not tap's):
//   tsx test/fuzz/run.ts <target> <seconds> <seed> [--save]
// Prints the result as one JSON line. --save adds new interesting inputs to the corpus.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoverageFuzzer } from './fuzzer.ts';
import { TARGETS } from './targets.ts';

const [name, seconds, seed, save] = process.argv.slice(2);
const make = TARGETS[name ?? ''];
if (!make) throw new Error(`unknown target ${name}; targets: ${Object.keys(TARGETS).join(', ')}`);
const dir = join(dirname(fileURLToPath(import.meta.url)), 'corpus', name!);
const f = new CoverageFuzzer(make(), dir);
const r = f.run({ seed: Number(seed) >>> 0, ms: Number(seconds) * 1000, save: save === '--save' });
console.log(JSON.stringify(r));
