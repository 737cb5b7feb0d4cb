// `npm run bench -- [--quick] [--only <case|group>[,...]] [--runs N] [--profile] [--list] [--max-minutes M]`
// Pure argument parsing (test/bench/args.test.ts): which paths (cases), which groups of figures,
// how long each measurement lasts. Unknown names are an error that lists the known ones.
import { parseArgs } from 'node:util';
import { CASES, type CaseName } from './figures.ts';

/**
 * Groups of figures. Each applies to some cases and runs when it is selected and at least one of
 * its cases is. 'profile' is not in the default run (it needs linux-perf and adds a minute).
 */
export const GROUPS = {
  tcp: { cases: CASES, about: 'iperf3 TCP, up and down, 1 and 4 streams (Gbit/s, retransmits)' },
  udp: { cases: CASES, about: 'iperf3 UDP, 64 and 1400-byte datagrams, up and down (received pps, loss %)' },
  latency: { cases: CASES, about: 'ping (paths that carry ICMP) and a TCP request/response loop: p50, p99' },
  setup: {
    cases: ['plain', 'gsra'],
    about: 'connect() to first byte, first and later connections; name lookups through the agent vs without',
  },
  concurrent: { cases: ['plain', 'gsra'], about: '200 concurrent short connections' },
  gateway: {
    cases: ['gsra'],
    about: 'gateway cost in memory: logins/s, reservations/s, RSS per users and flows, policy refresh',
  },
  engine: { cases: ['gsra'], about: 'the packet engine alone, in memory, one core (pps per payload size)' },
  profile: {
    cases: ['gsra'],
    about: 'perf record of both engines during bulk TCP (only with --profile or --only)',
  },
} as const satisfies Record<string, { cases: readonly CaseName[]; about: string }>;
export type GroupName = keyof typeof GROUPS;
const DEFAULT_GROUPS = (Object.keys(GROUPS) as GroupName[]).filter((g) => g !== 'profile');

export interface Timing {
  runs: number;
  tcpSeconds: number;
  udpSeconds: number;
  pingCount: number;
  rrCount: number;
  /** Connections per variant of the setup figures (first, later, plain). */
  setupConnections: number;
  concurrent: number;
  /** Engine seconds per figure. */
  engineSeconds: number;
  /** The largest flow count of the gateway cost figures. */
  maxFlows: number;
  profileSeconds: number;
}

export const FULL: Timing = {
  runs: 3,
  tcpSeconds: 4,
  udpSeconds: 3,
  pingCount: 200,
  rrCount: 2000,
  setupConnections: 100,
  concurrent: 200,
  engineSeconds: 1,
  maxFlows: 1_000_000,
  profileSeconds: 8,
};

export const QUICK: Timing = {
  runs: 1,
  tcpSeconds: 2,
  udpSeconds: 1,
  pingCount: 50,
  rrCount: 300,
  setupConnections: 20,
  concurrent: 200,
  engineSeconds: 0.3,
  maxFlows: 100_000,
  profileSeconds: 4,
};

export interface BenchOptions {
  cases: CaseName[];
  groups: GroupName[];
  timing: Timing;
  quick: boolean;
  list: boolean;
  /** Re-make the summary and chart from this run directory's latest.jsonl and latest-meta.json; measure nothing. */
  resummarize: boolean;
  outDir: string;
  /** The whole run is aborted (and cleaned up) after this long. */
  maxMinutes: number;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: npm run bench -- [--quick] [--only <case|group>[,...]] [--runs N] [--profile] [--max-minutes M] [--out DIR] [--list] [--resummarize]
  cases:  ${CASES.join(', ')}
  groups: ${Object.keys(GROUPS).join(', ')}
  --only takes cases and/or groups: cases narrow the paths, groups narrow the figures
  (e.g. --only gsra,openvpn,tcp). --quick: one run, shorter measurements (a smoke run).
  --resummarize: re-make latest-summary.txt and latest.svg in --out from its latest.jsonl and
  latest-meta.json, measuring nothing.`;

export function parseBenchArgs(argv: string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string', multiple: true },
        runs: { type: 'string' },
        profile: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        resummarize: { type: 'boolean', default: false },
        out: { type: 'string', default: 'bench-results' },
        'max-minutes': { type: 'string' },
      },
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const names = (values.only ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(CASES as readonly string[]).includes(n) && !(n in GROUPS));
  if (unknown.length) throw new UsageError(`unknown case or group: ${unknown.join(', ')}\n${USAGE}`);
  const onlyCases = names.filter((n): n is CaseName => (CASES as readonly string[]).includes(n));
  const onlyGroups = names.filter((n): n is GroupName => n in GROUPS);
  const cases = onlyCases.length ? CASES.filter((c) => onlyCases.includes(c)) : [...CASES];
  let groups: GroupName[] = onlyGroups.length ? [...new Set(onlyGroups)] : [...DEFAULT_GROUPS];
  if (values.profile && !groups.includes('profile')) groups.push('profile');
  groups = groups.filter((g) => (GROUPS[g].cases as readonly CaseName[]).some((c) => cases.includes(c)));
  if (!groups.length) {
    throw new UsageError(
      `nothing to run: none of the groups ${onlyGroups.join(', ')} measures ${cases.join(', ')}`,
    );
  }
  const timing = { ...(values.quick ? QUICK : FULL) };
  if (values.runs !== undefined) {
    const r = Number(values.runs);
    if (!Number.isInteger(r) || r < 1 || r > 9)
      throw new UsageError(`--runs must be 1..9, got ${values.runs}`);
    timing.runs = r;
  }
  let maxMinutes = values.quick ? 10 : 30;
  if (values['max-minutes'] !== undefined) {
    maxMinutes = Number(values['max-minutes']);
    if (!(maxMinutes > 0 && maxMinutes <= 120)) {
      throw new UsageError(`--max-minutes must be within (0, 120], got ${values['max-minutes']}`);
    }
  }
  return {
    cases,
    groups,
    timing,
    quick: values.quick,
    list: values.list,
    resummarize: values.resummarize,
    outDir: values.out,
    maxMinutes,
  };
}
