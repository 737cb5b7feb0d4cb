// The order of the path comparison: every measurement of every case, `runs` times, alternated so
// that a slow moment of the shared machine hits every case alike. For run r and measurement m
// (in a fixed list), all cases run back to back, their order rotated by r + m so that no case is
// always first (the first after a change of offloads, or after an idle pause). Pure; checked by
// test/bench/plan.test.ts.
import type { CaseName, Dir } from './figures.ts';
import type { GroupName, Timing } from './args.ts';

export type Measurement =
  | { kind: 'tcp'; dir: Dir; streams: 1 | 4 }
  | { kind: 'udp'; dir: Dir; size: 64 | 1400 }
  | { kind: 'ping' }
  | { kind: 'rr' };

export interface Step {
  run: number;
  case: CaseName;
  m: Measurement;
}

export function measurements(groups: readonly GroupName[]): Measurement[] {
  const out: Measurement[] = [];
  if (groups.includes('tcp')) {
    for (const streams of [1, 4] as const)
      for (const dir of ['en-in', 'in-en'] as const) out.push({ kind: 'tcp', dir, streams });
  }
  if (groups.includes('udp')) {
    for (const size of [64, 1400] as const)
      for (const dir of ['en-in', 'in-en'] as const) out.push({ kind: 'udp', dir, size });
  }
  if (groups.includes('latency')) out.push({ kind: 'ping' }, { kind: 'rr' });
  return out;
}

export function label(m: Measurement): string {
  switch (m.kind) {
    case 'tcp':
      return `tcp ${m.dir} x${m.streams}`;
    case 'udp':
      return `udp ${m.dir} ${m.size}B`;
    default:
      return m.kind;
  }
}

/**
 * `canRun(case, m)` returns null when the case carries m, or why not (then m is not scheduled
 * for that case and the caller reports it as skipped).
 */
export function schedule(
  cases: readonly CaseName[],
  ms: readonly Measurement[],
  runs: number,
  canRun: (c: CaseName, m: Measurement) => string | null,
): Step[] {
  const steps: Step[] = [];
  for (let run = 0; run < runs; run++) {
    ms.forEach((m, mi) => {
      const able = cases.filter((c) => canRun(c, m) === null);
      const k = able.length ? (run + mi) % able.length : 0;
      for (const c of [...able.slice(k), ...able.slice(0, k)]) steps.push({ run, case: c, m });
    });
  }
  return steps;
}

/** Seconds a step is expected to take (measurement plus tool start-up), for the time budget. */
export function stepSeconds(m: Measurement, t: Timing): number {
  switch (m.kind) {
    case 'tcp':
      return t.tcpSeconds + 0.7;
    case 'udp':
      return t.udpSeconds + 0.7;
    case 'ping':
      return t.pingCount * 0.005 + 0.3;
    case 'rr':
      return t.rrCount * 0.0004 + 0.5;
  }
}
