// The coverage-guided fuzzers (fuzzer.ts) of the control-protocol decoder (with both state
// machines behind it) and of the DNS parser (with the gateway's responder and the agent's answer
// check behind it): a few seconds each in `npm test`, minutes in `npm run test:long`
// (GSRA_LONG=1). Each run starts from the committed corpus (corpus/<target>/), is seeded (the
// seed is printed; GSRA_FUZZ_SEED replays it) and runs in a process of its own, so that its
// coverage counters are not tap's. Every input that ever crashed a target is kept in
// regressions/<target>/ and replayed here first.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuzzSeed } from '../../common/test/fuzz-random.ts';
import { TARGETS } from './targets.ts';

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = process.env.GSRA_LONG ? 300 : 4;

for (const name of Object.keys(TARGETS)) {
  t.test(`${name}: inputs that once crashed the target do not`, async (t) => {
    const dir = join(here, 'regressions', name);
    const files = existsSync(dir) ? readdirSync(dir) : [];
    const target = TARGETS[name]!();
    for (const f of files) t.doesNotThrow(() => target.run(readFileSync(join(dir, f))), f);
    t.pass(`${files.length} regression inputs`);
  });

  t.test(`${name}: coverage-guided fuzzing for ${SECONDS} s finds no crash`, async (t) => {
    const seed = fuzzSeed();
    t.comment(`${name} fuzz: seed ${seed} (replay with GSRA_FUZZ_SEED=${seed})`);
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(here, 'run.ts'), name, String(SECONDS), String(seed)],
      {
        encoding: 'utf8',
        timeout: (SECONDS + 60) * 1000,
      },
    );
    t.equal(r.status, 0, `the fuzzer ran ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    t.comment(
      `${name}: ${res.execs} execs, ${res.corpus} inputs in the corpus, ${res.features} coverage features, ${res.newInputs} new`,
    );
    // Not a speed check (the machine may be busy): every committed corpus input ran, then mutations.
    t.ok(res.execs > res.corpus, `${res.execs} executions beyond the ${res.corpus} corpus inputs`);
    t.ok(res.features > 50, 'coverage was measured');
    t.same(res.crashes, [], 'no crash');
  });
}
