// `npm run bench [-- --quick] [--only <case|group>[,...]] [--profile] ...` (args.ts has the
// options): GSRA against every path a user would pick instead, in one run, on one lab.
// Writes, in bench-results/ (or --out):
//   latest.jsonl        one JSON object per figure (figures.ts)
//   latest-summary.txt  the one-screen summary with the same-run ratios (also printed)
//   latest.svg          the throughput and latency tables as a chart
//   latest-meta.json    when, where, with what (load, versions, options, step errors)
//   latest-profile-*.txt (--profile) perf reports of both engines during bulk TCP
// Never asserts on a timing: figures are for reading and comparing. A step that fails is
// reported (and the exit code is 1) but does not stop the others. Bounded in time (--max-minutes)
// and it leaves nothing behind: the lab removes its namespaces and processes on every exit path.
import { mkdirSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseBenchArgs, GROUPS, UsageError, type BenchOptions } from './args.ts';
import { figureLine, parseFigureLines, type Figure } from './figures.ts';
import { measurements } from './plan.ts';
import { startBenchLab, type BenchLab } from './paths.ts';
import { compare } from './compare.ts';
import { stepRunner, type StepError } from './steps.ts';
import { summary } from './summary.ts';
import { chartSvg } from './chart.ts';
import { versions } from './meta.ts';

const say = (s: string) => console.error(`bench: ${s}`);
const chartTitle = (iso: string) =>
  `GSRA against the plain path, wireguard-go and OpenVPN, same lab, same run (${iso.slice(0, 16)}Z)`;

async function main(o: BenchOptions): Promise<number> {
  mkdirSync(o.outDir, { recursive: true });
  const out = (f: string) => join(o.outDir, f);
  writeFileSync(out('latest.jsonl'), '');
  const figures: Figure[] = [];
  const errors: StepError[] = [];
  const emit = (fs: Figure[]) => {
    for (const f of fs) {
      const line = figureLine(f);
      figures.push(f);
      appendFileSync(out('latest.jsonl'), line + '\n');
      console.log(line);
    }
  };
  const started = new Date();
  const meta: Record<string, unknown> = {
    started: started.toISOString(),
    quick: o.quick,
    cases: o.cases,
    groups: o.groups,
    timing: o.timing,
    loadavg_start: loadavg().map((x) => Number(x.toFixed(2))),
    versions: await versions(),
  };
  const labGroups = o.groups.filter((g) =>
    ['tcp', 'udp', 'latency', 'setup', 'concurrent', 'profile'].includes(g),
  );
  let bl: BenchLab | undefined;
  // Each group is a step of its own: one that fails is reported and the others still run.
  const group = stepRunner(errors, say);
  try {
    if (labGroups.length) {
      const labCases = o.cases.filter((c) => c !== 'gsra-compat');
      const needGsra = o.groups.some((g) => ['setup', 'concurrent', 'profile'].includes(g));
      const setUp = needGsra && !labCases.includes('gsra') ? [...labCases, 'gsra' as const] : labCases;
      await group('lab', async () => {
        bl = await startBenchLab(setUp, say);
        meta.lab = bl.notes;
      });
      const lab = bl as BenchLab | undefined;
      if (lab) {
        const ms = measurements(o.groups);
        if (ms.length) {
          await group('comparison', async () => {
            const r = await compare(lab, o.cases, ms, o.timing, say);
            emit(r.figures);
            errors.push(...r.errors);
          });
        }
        if (o.groups.includes('setup')) {
          await group('setup', async () => {
            const { connectionSetup } = await import('./setup.ts');
            const r = await connectionSetup(lab, o.timing, say);
            emit(r.figures);
            errors.push(...r.errors);
          });
        }
        if (o.groups.includes('concurrent')) {
          await group('concurrent', async () => {
            const { concurrentConnections } = await import('./concurrent.ts');
            const r = await concurrentConnections(lab, o.cases, o.timing, say);
            emit(r.figures);
            errors.push(...r.errors);
          });
        }
        if (o.groups.includes('profile')) {
          await group('profile', async () => {
            const { profileEngines } = await import('./profile.ts');
            meta.profile = await profileEngines(lab, o.timing, o.outDir, say);
          });
        }
        await lab.stop();
        bl = undefined;
      }
    }
    if (o.groups.includes('engine')) {
      await group('engine', async () => {
        const { engineFigures } = await import('./engine.ts');
        emit(await engineFigures(o.timing, say));
      });
    }
    if (o.groups.includes('gateway')) {
      await group('gateway', async () => {
        const { gatewayCost } = await import('./gateway-cost.ts');
        const r = await gatewayCost(o.timing, say);
        emit(r.figures);
        errors.push(...r.errors);
      });
    }
  } finally {
    if (bl) await (bl as BenchLab).stop().catch(() => {});
  }
  meta.finished = new Date().toISOString();
  meta.minutes = Number(((Date.now() - started.getTime()) / 60_000).toFixed(1));
  meta.loadavg_end = loadavg().map((x) => Number(x.toFixed(2)));
  meta.errors = errors;
  writeFileSync(out('latest-meta.json'), JSON.stringify(meta, null, 2) + '\n');
  const text = summary(figures, meta);
  writeFileSync(out('latest-summary.txt'), text);
  writeFileSync(out('latest.svg'), chartSvg(figures, chartTitle(started.toISOString())));
  console.error(text);
  for (const e of errors) say(`error in ${e.step}: ${e.error.split('\n')[0]}`);
  say(
    `wrote ${out('latest.jsonl')} (${figures.length} figures), latest-summary.txt, latest.svg, latest-meta.json`,
  );
  return errors.length ? 1 : 0;
}

let opts: BenchOptions;
try {
  opts = parseBenchArgs(process.argv.slice(2));
} catch (e) {
  console.error((e as Error).message);
  process.exit(e instanceof UsageError ? 2 : 1);
}
if (opts.resummarize) {
  const out = (f: string) => join(opts.outDir, f);
  const figs = parseFigureLines(readFileSync(out('latest.jsonl'), 'utf8'));
  const meta = JSON.parse(readFileSync(out('latest-meta.json'), 'utf8')) as Record<string, unknown>;
  const text = summary(figs, meta);
  writeFileSync(out('latest-summary.txt'), text);
  writeFileSync(out('latest.svg'), chartSvg(figs, chartTitle(String(meta.started ?? ''))));
  console.log(text);
  process.exit(0);
}
if (opts.list) {
  for (const [g, d] of Object.entries(GROUPS)) console.log(`${g.padEnd(11)} ${d.about}`);
  process.exit(0);
}
if (process.getuid?.() !== 0 && opts.groups.some((g) => g !== 'engine' && g !== 'gateway')) {
  console.error('bench: the lab needs root (network namespaces, iptables); --only engine,gateway does not');
  process.exit(2);
}
// The time bound: past it, exit (the exit handlers of the lab remove namespaces and processes).
const watchdog = setTimeout(() => {
  say(`FAILED: still running after --max-minutes ${opts.maxMinutes}; stopping and cleaning up`);
  process.exit(1);
}, opts.maxMinutes * 60_000);
watchdog.unref();
main(opts).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
