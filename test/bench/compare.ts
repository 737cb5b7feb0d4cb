// Item 1 of the benchmark: every path, every throughput and latency measurement, `runs` times,
// alternated (plan.ts). Each step checks its path's counter; a step that fails is reported with
// its error and the figure keeps the runs that succeeded (none: the figure says skipped, why).
import type { Timing } from './args.ts';
import { find, fromRuns, skipped, CASES, type CaseName, type Figure, type FigureKey } from './figures.ts';
import { checkPath } from './path-check.ts';
import { iperfArgv, parseTcp, parseUdp, runIperf } from './iperf.ts';
import { label, schedule, stepSeconds, type Measurement, type Step } from './plan.ts';
import { ECHO_PORT, COMPAT_SKIP, type BenchLab, type PathCase } from './paths.ts';
import { parsePing, probe, type RrResult } from './probe.ts';
import { percentile } from './stats.ts';
import type { StepError } from './steps.ts';

interface Value {
  key: FigureKey;
  value: number;
}

async function measure(
  bl: BenchLab,
  pc: PathCase,
  m: Measurement,
  t: Timing,
): Promise<{ values: Value[]; moved: number }> {
  const base = { case: pc.name };
  switch (m.kind) {
    case 'tcp': {
      const argv = iperfArgv(pc.target, { dir: m.dir, seconds: t.tcpSeconds, streams: m.streams });
      const r = parseTcp(await runIperf(bl.lab, argv, t.tcpSeconds));
      const key = { ...base, dir: m.dir, streams: m.streams };
      const values: Value[] = [{ key: { ...key, metric: 'tcp_gbps' }, value: r.gbps }];
      if (r.retransmits !== null)
        values.push({ key: { ...key, metric: 'tcp_retransmits' }, value: r.retransmits });
      return { values, moved: r.bytes };
    }
    case 'udp': {
      const argv = iperfArgv(pc.target, { dir: m.dir, seconds: t.udpSeconds, udpSize: m.size });
      const r = parseUdp(await runIperf(bl.lab, argv, t.udpSeconds));
      const key = { ...base, dir: m.dir, size: m.size };
      return {
        values: [
          { key: { ...key, metric: 'udp_pps' }, value: r.pps },
          { key: { ...key, metric: 'udp_loss_pct' }, value: r.lossPct },
        ],
        moved: r.bytes,
      };
    }
    case 'ping': {
      const r = await bl.lab.exec(
        'en1',
        ['ping', '-n', '-c', String(t.pingCount), '-i', '0.005', '-W', '1', pc.target],
        {
          timeoutMs: 30_000,
          allowFail: true,
        },
      );
      const p = parsePing(r.stdout);
      if (p.received < p.sent * 0.9)
        throw new Error(`ping to ${pc.target}: ${p.received} of ${p.sent} replies`);
      return {
        values: [
          { key: { ...base, metric: 'ping_p50_ms' }, value: percentile(p.samples_ms, 50) },
          { key: { ...base, metric: 'ping_p99_ms' }, value: percentile(p.samples_ms, 99) },
        ],
        moved: p.bytes,
      };
    }
    case 'rr': {
      const r = await probe<RrResult>(bl.lab, 'en1', ['rr', pc.dns, pc.target, ECHO_PORT, t.rrCount], 60_000);
      return {
        values: [
          { key: { ...base, metric: 'rr_p50_ms' }, value: percentile(r.samples_ms, 50) },
          { key: { ...base, metric: 'rr_p99_ms' }, value: percentile(r.samples_ms, 99) },
        ],
        moved: r.bytes,
      };
    }
  }
}

const DIGITS: Record<string, number> = { tcp_retransmits: 6, udp_pps: 4 };

export interface CompareResult {
  figures: Figure[];
  errors: StepError[];
}

export async function compare(
  bl: BenchLab,
  cases: readonly CaseName[],
  ms: readonly Measurement[],
  t: Timing,
  say: (s: string) => void,
): Promise<CompareResult> {
  const canRun = (c: CaseName, m: Measurement) => {
    const pc = bl.cases.get(c);
    return pc ? pc.carries(m) : c === 'gsra-compat' ? COMPAT_SKIP : 'not set up';
  };
  const steps: Step[] = schedule(cases, ms, t.runs, canRun);
  const est = steps.reduce((s, st) => s + stepSeconds(st.m, t), 0);
  say(`comparison: ${steps.length} steps, about ${Math.round(est / 60)} min`);
  const runs = new Map<string, { key: FigureKey; values: number[] }>();
  const errors: StepError[] = [];
  const t0 = Date.now();
  for (const [i, st] of steps.entries()) {
    const pc = bl.cases.get(st.case)!;
    const name = `${st.case} ${label(st.m)} run ${st.run + 1}`;
    try {
      await bl.prepare(st.case);
      const before = await pc.counter();
      const { values, moved } = await measure(bl, pc, st.m, t);
      checkPath(pc.via, before, await pc.counter(), moved);
      for (const v of values) {
        const k = JSON.stringify(v.key);
        if (!runs.has(k)) runs.set(k, { key: v.key, values: [] });
        runs.get(k)!.values.push(v.value);
      }
      const head = values[0]!;
      say(
        `[${i + 1}/${steps.length} ${Math.round((Date.now() - t0) / 1000)}s] ${name}: ${head.key.metric} ${head.value.toPrecision(3)}`,
      );
    } catch (e) {
      const error = (e as Error).message;
      errors.push({ step: name, error });
      say(`[${i + 1}/${steps.length}] ${name}: FAILED: ${error}`);
    }
  }
  const figures: Figure[] = [...runs.values()].map(({ key, values }) =>
    fromRuns(key, values, DIGITS[key.metric] ?? 3),
  );
  // Say what was not measured, and why: every case x measurement the plan left out, and every
  // measurement whose runs all failed.
  for (const c of cases) {
    for (const m of ms) {
      const why = canRun(c, m);
      const keys = keysOf(c, m);
      for (const key of keys) {
        if (find(figures, key)) continue;
        const failed = errors.find((er) => er.step.startsWith(`${c} ${label(m)} `));
        figures.push(skipped(key, why ?? `every run failed: ${failed?.error ?? 'unknown'}`));
      }
    }
  }
  figures.sort((a, b) => CASES.indexOf(a.case as CaseName) - CASES.indexOf(b.case as CaseName));
  return { figures, errors };
}

/** The figure keys a measurement yields for a case (primary metrics: what a skip is reported as). */
function keysOf(c: CaseName, m: Measurement): FigureKey[] {
  switch (m.kind) {
    case 'tcp':
      return [{ case: c, metric: 'tcp_gbps', dir: m.dir, streams: m.streams }];
    case 'udp':
      return ['udp_pps', 'udp_loss_pct'].map((metric) => ({ case: c, metric, dir: m.dir, size: m.size }));
    case 'ping':
      return ['ping_p50_ms', 'ping_p99_ms'].map((metric) => ({ case: c, metric }));
    case 'rr':
      return ['rr_p50_ms', 'rr_p99_ms'].map((metric) => ({ case: c, metric }));
  }
}
