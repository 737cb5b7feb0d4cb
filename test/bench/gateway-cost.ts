// Item 3: what a gateway costs per user and per flow, in memory, through the real code.
//   - gateway-child.ts runs gsra-gateway's daemon (GatewayControl, DirectoryPolicy, PortPool, the
//     engine's tables) on a directory of 10 000 users; this process plays the agents (the real
//     AgentControl) and sends it their datagrams over IPC. logins/s and reservations/s count only
//     the CPU time spent inside the daemon (wall time on a shared machine includes other jobs'): what one core of a gateway spends per login and per
//     reserved port (RESERVE asks 4, as an agent's pool does). Then the RSS of that process
//     (policy snapshot + 10 000 sessions, then + 40 000 reservations), and a policy refresh at
//     10 000 users: loading it, and loading it with a change that makes the daemon decide every
//     session and reservation again.
//   - flows-child.ts binds 100 000 and 1 000 000 flows in engines (one per public address) and
//     reports the RSS they add.
// Each figure comes from its own child process, so one figure's garbage is not another's memory.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { protocol } from '@gsra/common';
import type { Timing } from './args.ts';
import { single, type Figure } from './figures.ts';
import { stepRunner, type StepError } from './steps.ts';
import { GROUP, GROUP_KEY, IN_NAME, uid, userSecret } from './bench-directory.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const MIB = 1024 * 1024;
export const COST_USERS = 10_000;
const live = new Set<ChildProcess>();
let exitHook = false;

function child(file: string, args: string[]): ChildProcess {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const c = fork(join(HERE, file), args, {
    execArgv: [
      '--expose-gc',
      '--import',
      'tsx',
      ...(process.env.GSRA_BENCH_CPU_PROF
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.GSRA_BENCH_CPU_PROF]
        : []),
    ],
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}

/** Runs flows-child.ts to completion and parses the JSON line it prints. */
async function flowsChild(
  flows: number,
  timeoutMs: number,
): Promise<{ rssBefore: number; rssAfter: number; bound: number; engines: number; seconds: number }> {
  const c = child('flows-child.ts', [String(flows)]);
  let out = '';
  let err = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => c.once('exit', r));
  clearTimeout(timer);
  if (code === null) throw new Error(`flows-child ${flows}: killed after its ${timeoutMs / 1000} s budget`);
  if (code !== 0) throw new Error(`flows-child ${flows}: exit ${code}: ${err.slice(-500)}`);
  return JSON.parse(out.trim().split('\n').pop()!) as never;
}

/** The gateway child, with a request/response call over IPC. */
class GatewayChild {
  private next = 1;
  private waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private err = '';
  constructor(readonly proc: ChildProcess) {
    proc.stderr!.on('data', (d: Buffer) => (this.err = (this.err + d.toString()).slice(-2000)));
    proc.on('message', (m: { id: number; ok: boolean; r?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) w?.resolve(m.r);
      else w?.reject(new Error(m.error));
    });
    proc.once('exit', (code) => {
      for (const w of this.waiting.values())
        w.reject(new Error(`gateway child exited (${code}): ${this.err}`));
      this.waiting.clear();
    });
  }
  call<T>(msg: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: unknown) => void, reject });
      this.proc.send({ id, ...msg });
    });
  }
}

type Agent = protocol.AgentControl;
type AgentEvent = protocol.AgentEvent;

/** Delivers an agent's datagrams to the gateway and the answers back, until nothing is left. */
async function exchange(
  gw: GatewayChild,
  agent: Agent,
  first: protocol.AgentResult,
  from: protocol.Endpoint,
): Promise<AgentEvent[]> {
  const events = [...first.events];
  let queue = first.send.filter((o) => o.dest.via === 'control').map((o) => o.data);
  for (let guard = 0; queue.length && guard < 20; guard++) {
    const next: Buffer[] = [];
    for (const data of queue) {
      const r = await gw.call<{ send: { data: Buffer }[] }>({ op: 'dgram', data, from });
      for (const s of r.send) {
        const a = agent.handleDatagram(s.data, Date.now());
        events.push(...a.events);
        next.push(...a.send.filter((o) => o.dest.via === 'control').map((o) => o.data));
      }
    }
    queue = next;
  }
  return events;
}

const endpoint = (i: number): protocol.Endpoint => ({
  addr: `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`,
  port: 50_000,
});

export async function gatewayCost(
  t: Timing,
  say: (s: string) => void,
): Promise<{ figures: Figure[]; errors: StepError[] }> {
  const figures: Figure[] = [];
  const errors: StepError[] = [];
  const step = stepRunner(errors, say, 'gateway ');
  const users = COST_USERS;
  const key = { case: 'gateway' as const, users };

  await step('users', async () => {
    say(`gateway: ${users} users through gsra-gateway's daemon in a child process`);
    const gw = new GatewayChild(child('gateway-child.ts', []));
    try {
      const init = await gw.call<{ loadMs: number; before: { rss: number; heap: number } }>({
        op: 'init',
        users,
      });
      const base = init.before;
      figures.push(single({ ...key, metric: 'policy_first_load_ms' }, init.loadMs));
      const agents: Agent[] = [];
      await gw.call({ op: 'phase', name: 'login' });
      for (let i = 0; i < users; i++) {
        const a = new protocol.AgentControl({
          user: uid(i),
          userSecret: userSecret(i),
          group: GROUP,
          groupKey: GROUP_KEY,
        });
        const ev = await exchange(gw, a, a.login(Date.now()), endpoint(i));
        if (!ev.some((e) => e.kind === 'session-up'))
          throw new Error(`login of ${uid(i)} failed: ${JSON.stringify(ev.slice(-2))}`);
        agents.push(a);
      }
      const login = await gw.call<{ ms: number; cpuMs: number; calls: number }>({
        op: 'time',
        name: 'login',
      });
      const mLogin = await gw.call<{ rss: number; heap: number }>({ op: 'mem' });
      figures.push(single({ ...key, metric: 'logins_per_s' }, users / (login.cpuMs / 1000)));
      figures.push(single({ ...key, metric: 'rss_mib' }, (mLogin.rss - base.rss) / MIB));
      figures.push(single({ ...key, metric: 'heap_mib' }, (mLogin.heap - base.heap) / MIB));
      say(
        `gateway: ${users} logins in ${login.cpuMs.toFixed(0)} ms of gateway CPU (${login.ms.toFixed(0)} ms wall, ${login.calls} datagrams)`,
      );

      await gw.call({ op: 'phase', name: 'reserve' });
      let ports = 0;
      for (let i = 0; i < users; i++) {
        const a = agents[i]!;
        const ev = await exchange(gw, a, a.reserve(IN_NAME, 6, Date.now()), endpoint(i));
        const r = ev.find((e) => e.kind === 'reserved');
        if (!r || r.kind !== 'reserved')
          throw new Error(`RESERVE of ${uid(i)} failed: ${JSON.stringify(ev.slice(-2))}`);
        ports += r.ports.length;
      }
      const reserve = await gw.call<{ ms: number; cpuMs: number; calls: number }>({
        op: 'time',
        name: 'reserve',
      });
      const mRes = await gw.call<{ rss: number; heap: number }>({ op: 'mem' });
      const stats = await gw.call<{ sessions: number; reservations: number; engine: Record<string, number> }>(
        { op: 'stats' },
      );
      if (stats.sessions !== users || stats.reservations !== ports) {
        throw new Error(
          `the gateway holds ${stats.sessions} sessions and ${stats.reservations} reservations, expected ${users} and ${ports}`,
        );
      }
      figures.push(single({ ...key, metric: 'reservations_per_s' }, ports / (reserve.cpuMs / 1000)));
      figures.push(single({ ...key, flows: ports, metric: 'rss_mib' }, (mRes.rss - base.rss) / MIB));
      say(
        `gateway: ${ports} reservations in ${reserve.cpuMs.toFixed(0)} ms of gateway CPU (${reserve.ms.toFixed(0)} ms wall)`,
      );

      // The same number of ports in RESERVEs of 16 (the most one RESERVE may ask; an agent asks
      // that many with poolTarget 16): what a RESERVE costs per port once its fixed part (MAC,
      // decode, decision, log line) is shared by more ports. An eighth of the users, another IN
      // protocol (UDP), so their first pools stay as they are; 20 000 ports (the pool is one range for
      // both protocols: 40 000 are taken).
      await gw.call({ op: 'phase', name: 'login16' });
      const agents16: Agent[] = [];
      for (let i = 0; i < users / 8; i++) {
        const a = new protocol.AgentControl({
          user: uid(i),
          userSecret: userSecret(i),
          group: GROUP,
          groupKey: GROUP_KEY,
          poolTarget: 16,
        });
        await exchange(gw, a, a.login(Date.now()), endpoint(users + i));
        agents16.push(a);
      }
      await gw.call({ op: 'phase', name: 'reserve16' });
      let ports16 = 0;
      for (let i = 0; i < agents16.length; i++) {
        const a = agents16[i]!;
        const ev = await exchange(gw, a, a.reserve(IN_NAME, 17, Date.now()), endpoint(users + i));
        const r = ev.find((e) => e.kind === 'reserved');
        if (!r || r.kind !== 'reserved' || r.ports.length !== 16)
          throw new Error(`RESERVE of 16 by ${uid(i)} failed: ${JSON.stringify(ev.slice(-2))}`);
        ports16 += r.ports.length;
      }
      const reserve16 = await gw.call<{ ms: number; cpuMs: number; calls: number }>({
        op: 'time',
        name: 'reserve16',
      });
      figures.push(
        single({ ...key, metric: 'reservations_batch16_per_s' }, ports16 / (reserve16.cpuMs / 1000)),
      );
      say(
        `gateway: ${ports16} reservations in RESERVEs of 16 in ${reserve16.cpuMs.toFixed(0)} ms of gateway CPU (${reserve16.ms.toFixed(0)} ms wall)`,
      );

      const rl = await gw.call<{ loadMs: number; reloadMs: number }>({ op: 'reload', remove: 0 });
      figures.push(single({ ...key, metric: 'policy_load_ms' }, rl.loadMs));
      figures.push(single({ ...key, metric: 'policy_refresh_ms' }, rl.reloadMs));
      say(
        `gateway: policy at ${users} users: load ${rl.loadMs.toFixed(0)} ms, load and re-decide ${rl.reloadMs.toFixed(0)} ms`,
      );
    } finally {
      gw.proc.kill('SIGTERM');
    }
  });

  for (const flows of [100_000, t.maxFlows].filter((f, i, a) => a.indexOf(f) === i)) {
    await step(`${flows} flows`, async () => {
      say(`gateway: binding ${flows} flows in the engine (child process)`);
      const r = await flowsChild(flows, 300_000);
      if (r.bound !== flows) throw new Error(`${r.bound} of ${flows} flows bound`);
      const bytes = r.rssAfter - r.rssBefore;
      figures.push(single({ case: 'gateway', flows, metric: 'rss_mib' }, bytes / MIB));
      figures.push(single({ case: 'gateway', flows, metric: 'rss_per_flow_bytes' }, bytes / flows));
      figures.push(single({ case: 'gateway', flows, metric: 'flow_binds_per_s' }, flows / r.seconds));
      say(
        `gateway: ${flows} flows in ${r.engines} engine(s): ${(bytes / MIB).toFixed(0)} MiB, ${(bytes / flows).toFixed(0)} B per flow`,
      );
    });
  }
  return { figures, errors };
}
