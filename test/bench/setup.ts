// Item 2: connection setup. connect() to the first byte from the server (in1's banner port, which
// writes one byte on accept), over `setupConnections` connections each:
//   gsra, conn first: each to a fresh internal host name (bench-NNN.corp.example, added to alice's
//     group for this run, all at in1's address): the name goes through the agent's DNS (a new VIN,
//     the pool's RESERVE starts) and the connection through the full negotiation;
//   gsra, conn later: to intra1.corp.example again and again (the agent knows it);
//   plain: to GGR's port-forward, no GSRA.
// And name lookups: through the agent (en1, fresh names and a known one) against the resolver's
// own answer (en2, the PC beside en1 without an agent, asking the same server the same names).
// Figures are p50/p99 over the connections of one pass.
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { IN1, ZONE } from '../e2e/gsra-lab.ts';
import type { Timing } from './args.ts';
import { single, type Figure, type FigureKey } from './figures.ts';
import { checkPath } from './path-check.ts';
import { BANNER_PORT, type BenchLab } from './paths.ts';
import { probe, type ConnectResult, type DnsResult } from './probe.ts';
import { percentile } from './stats.ts';
import { stepRunner, type StepError } from './steps.ts';

export function benchHostNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(3, '0')}.${ZONE}`);
}

/** Adds the names to the sales group (alice's) in one LDAP modify, then has the gateway re-read. */
async function addHosts(bl: BenchLab, names: string[]): Promise<void> {
  const sales = bl.g.directory.slapd?.groups.sales.dn;
  if (!sales) throw new Error('the setup figures need the OpenLDAP directory (its sales group)');
  await bl.g.directory.modify(
    [
      `dn: ${sales}`,
      'changetype: modify',
      'add: gsraHost',
      ...names.map((n) => `gsraHost: ${n} ${ADDR.in1}`),
      '',
    ].join('\n'),
  );
  const pid = bl.g.gateway.child.pid;
  if (pid) process.kill(pid, 'SIGHUP');
  // The gateway answers the last name once its policy has it (it refreshes every 5 s anyway).
  await waitFor(
    'the gateway to resolve the bench host names',
    async () => {
      await probe<DnsResult>(bl.lab, 'en2', ['dns', ADDR.gwWan, 1, names[names.length - 1]!], 15_000);
      return true;
    },
    20_000,
    500,
  );
}

export async function connectionSetup(
  bl: BenchLab,
  t: Timing,
  say: (s: string) => void,
): Promise<{ figures: Figure[]; errors: StepError[] }> {
  const n = t.setupConnections;
  const figures: Figure[] = [];
  const errors: StepError[] = [];
  const gsra = bl.cases.get('gsra')!;
  const plain = bl.cases.get('plain');
  const pcts = (key: Omit<FigureKey, 'metric'>, metric: string, xs: number[]) => {
    figures.push(single({ ...key, metric: `${metric}_p50_ms` }, percentile(xs, 50), { n: xs.length }));
    figures.push(single({ ...key, metric: `${metric}_p99_ms` }, percentile(xs, 99), { n: xs.length }));
  };
  const step = stepRunner(errors, say, 'setup ');
  const names = benchHostNames(n);
  say(`setup: adding ${n} internal host names to the directory`);
  await bl.prepare('gsra');
  await addHosts(bl, names);
  const timeout = 30_000 + n * 2000;

  await step('gsra first connections', async () => {
    // Batches of at most 50 fresh names, each on a fresh session: every fresh name reserves a
    // pool of 4 ports, and a session may hold 256 reservations (see BenchLab.restartAgent).
    const conns: ConnectResult['conns'] = [];
    for (let i = 0; i < names.length; i += 50) {
      await bl.restartAgent();
      const batch = names.slice(i, i + 50);
      const before = await gsra.counter();
      const r = await probe<ConnectResult>(
        bl.lab,
        'en1',
        ['connect', ADDR.gwWan, BANNER_PORT, IN1, ...batch],
        timeout,
      );
      checkPath(gsra.via, before, await gsra.counter(), r.bytes);
      conns.push(...r.conns);
    }
    const key = { case: 'gsra', conn: 'first' } as const;
    pcts(
      key,
      'connect_first_byte',
      conns.map((c) => c.first_byte_ms),
    );
    pcts(
      key,
      'tcp_connect',
      conns.map((c) => c.connect_ms),
    );
    pcts(
      key,
      'dns',
      conns.map((c) => c.lookup_ms!),
    );
    say(
      `setup: gsra first connections: p50 ${percentile(
        conns.map((c) => c.first_byte_ms),
        50,
      ).toFixed(2)} ms`,
    );
  });
  await step('gsra later connections', async () => {
    await bl.restartAgent();
    const before = await gsra.counter();
    const r = await probe<ConnectResult>(
      bl.lab,
      'en1',
      ['connect', ADDR.gwWan, BANNER_PORT, IN1, ...Array<string>(n).fill(IN1)],
      timeout,
    );
    checkPath(gsra.via, before, await gsra.counter(), r.bytes);
    const key = { case: 'gsra', conn: 'later' } as const;
    pcts(
      key,
      'connect_first_byte',
      r.conns.map((c) => c.first_byte_ms),
    );
    pcts(
      key,
      'tcp_connect',
      r.conns.map((c) => c.connect_ms),
    );
    say(
      `setup: gsra later connections: p50 ${percentile(
        r.conns.map((c) => c.first_byte_ms),
        50,
      ).toFixed(2)} ms`,
    );
  });
  if (plain) {
    await step('plain connections', async () => {
      await bl.prepare('plain');
      const before = await plain.counter();
      const r = await probe<ConnectResult>(
        bl.lab,
        'en1',
        ['connect', '-', BANNER_PORT, ADDR.gwWan, ...Array<string>(n).fill(ADDR.gwWan)],
        timeout,
      );
      checkPath(plain.via, before, await plain.counter(), r.bytes);
      pcts(
        { case: 'plain' },
        'connect_first_byte',
        r.conns.map((c) => c.first_byte_ms),
      );
      pcts(
        { case: 'plain' },
        'tcp_connect',
        r.conns.map((c) => c.connect_ms),
      );
    });
  }
  await step('name lookups', async () => {
    const agent = await probe<DnsResult>(bl.lab, 'en1', ['dns', ADDR.gwWan, n, IN1], timeout);
    const own = await probe<DnsResult>(bl.lab, 'en2', ['dns', ADDR.gwWan, n, IN1], timeout);
    if (agent.answers[IN1] === ADDR.gwWan) throw new Error(`the agent did not rewrite ${IN1} (got GGR)`);
    if (own.answers[IN1] !== ADDR.gwWan) throw new Error(`en2 got ${own.answers[IN1]} for ${IN1}, not GGR`);
    pcts({ case: 'gsra', conn: 'later' }, 'dns', agent.samples_ms);
    pcts({ case: 'plain' }, 'dns', own.samples_ms);
  });
  return { figures, errors };
}
