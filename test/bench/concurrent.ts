// Item 3's lab case: `concurrent` (200) short connections opened at once from en1 to in1's echo
// port, each sending 32 bytes, reading them back and closing; through GSRA and, alternated in the
// same run, through the plain port-forward. Figures: the time until all are done, p50/p99 of one
// connection (connect to reply), and how many failed. GSRA starts each run on a fresh agent
// session (BenchLab.restartAgent); then the same batch is opened again at once, on the same
// session, and its failures are counted too (concurrent_repeat_failed).
import type { Timing } from './args.ts';
import { fromRuns, type CaseName, type Figure } from './figures.ts';
import { checkPath } from './path-check.ts';
import { ECHO_PORT, type BenchLab } from './paths.ts';
import { probe, type ConcurrentResult } from './probe.ts';
import { percentile } from './stats.ts';
import type { StepError } from './steps.ts';

export async function concurrentConnections(
  bl: BenchLab,
  cases: readonly CaseName[],
  t: Timing,
  say: (s: string) => void,
): Promise<{ figures: Figure[]; errors: StepError[] }> {
  const which = (['gsra', 'plain'] as const).filter((c) => cases.includes(c) && bl.cases.has(c));
  const runs = new Map<string, { c: CaseName; metric: string; values: number[] }>();
  const errors: StepError[] = [];
  const add = (c: CaseName, metric: string, v: number) => {
    const k = `${c} ${metric}`;
    if (!runs.has(k)) runs.set(k, { c, metric, values: [] });
    runs.get(k)!.values.push(v);
  };
  for (let run = 0; run < t.runs; run++) {
    for (const c of run % 2 ? [...which].reverse() : which) {
      const pc = bl.cases.get(c)!;
      try {
        await bl.prepare(c);
        if (c === 'gsra') await bl.restartAgent();
        const before = await pc.counter();
        const argv = ['concurrent', pc.dns, pc.target, ECHO_PORT, t.concurrent];
        const r = await probe<ConcurrentResult>(bl.lab, 'en1', argv, 60_000);
        if (r.ok) checkPath(pc.via, before, await pc.counter(), r.bytes);
        add(c, 'concurrent_total_ms', r.total_ms);
        add(c, 'concurrent_failed', r.error_count);
        if (r.samples_ms.length) {
          add(c, 'concurrent_p50_ms', percentile(r.samples_ms, 50));
          add(c, 'concurrent_p99_ms', percentile(r.samples_ms, 99));
        }
        // The same again at once, on the same session: what a user who keeps opening connections sees.
        const again = await probe<ConcurrentResult>(bl.lab, 'en1', argv, 60_000);
        add(c, 'concurrent_repeat_failed', again.error_count);
        say(
          `concurrent ${c} run ${run + 1}: ${r.ok}/${t.concurrent} done in ${r.total_ms.toFixed(0)} ms` +
            (r.error_count ? `, ${r.error_count} failed: ${r.errors.join('; ')}` : '') +
            `; at once again: ${again.error_count} failed${again.errors.length ? ` (${again.errors.join('; ')})` : ''}`,
        );
      } catch (e) {
        errors.push({ step: `concurrent ${c} run ${run + 1}`, error: (e as Error).message });
      }
    }
  }
  const figures = [...runs.values()].map(({ c, metric, values }) => {
    const f = fromRuns({ case: c, metric }, values);
    return { ...f, n: t.concurrent };
  });
  return { figures, errors };
}
