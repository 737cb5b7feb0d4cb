// Child process of gateway-cost.ts: the real gsra-gateway daemon (GatewayDaemon: GatewayControl,
// DirectoryPolicy, PortPool, the FTP ALG hooks, logging at info level into a sink) with the packet
// engine in memory (LinuxDataPlane, never started: no queue, no kernel rule), answering control
// datagrams the driver sends over IPC. Only the time spent inside the daemon is counted (per
// phase, wall and CPU), so the agents' work in the driver costs the figures nothing, and this process's
// memory is the gateway's alone.
// Messages (IPC, advanced serialization): {op:'init', users} -> {loadMs, mem}
//   {op:'phase', name} -> {} | {op:'dgram', data, from} -> {send: [{data, to}]}
//   {op:'time', name} -> {ms, cpuMs, calls} | {op:'mem'} -> {rss, heap} | {op:'reload', remove} -> {loadMs, reloadMs}
//   {op:'stats'} -> {sessions, reservations, engineReservations}
// Run: node --expose-gc --import tsx gateway-child.ts
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, protocol } from '@gsra/common';
import { GatewayDaemon, checkGatewayConfig } from '@gsra/gateway';
import { LinuxDataPlane } from '../../gateway/src/data-plane-linux.ts';
import { BenchDirectory } from './bench-directory.ts';

type Endpoint = protocol.Endpoint;
interface Msg {
  id: number;
  op: string;
  users?: number;
  name?: string;
  data?: Buffer;
  from?: Endpoint;
  remove?: number;
}

const GGR = '203.0.113.1';
const sink = new Writable({ write: (_c, _e, cb) => cb() });
let dir: BenchDirectory | undefined;
let daemon: GatewayDaemon | undefined;
let plane: LinuxDataPlane | undefined;
let phase = 'none';
const spent = new Map<string, { ns: bigint; cpuUs: number; calls: number }>();
let captured: { data: Buffer; to: Endpoint }[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'gsra-bench-gw-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function mem(): { rss: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

// Wall time and this process's CPU time (user + system): on a machine shared with other jobs the
// wall time includes the time the scheduler gave them; the CPU time is what the gateway spent.
async function timed<T>(f: () => T | Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const r = await f();
  const c = process.cpuUsage(c0);
  const s = spent.get(phase) ?? { ns: 0n, cpuUs: 0, calls: 0 };
  s.ns += process.hrtime.bigint() - t0;
  s.cpuUs += c.user + c.system;
  s.calls++;
  spent.set(phase, s);
  return r;
}

async function init(users: number): Promise<unknown> {
  writeFileSync(join(tmp, 'pw'), 'unused', { mode: 0o600 });
  const config = checkGatewayConfig({
    publicAddress: GGR,
    privateAddress: '10.0.0.1',
    wanInterface: 'wan0',
    lanInterface: 'lan0',
    // The widest range, so the port pool is never what stops the figures; limits per user and
    // per source stay at their defaults (each simulated user has its own address).
    ports: { first: 1025, last: 65535, reservationTtlSec: 86400 },
    // Admission limits (per source, and the budget of answers to unproven sources) at their widest:
    // this measures what one core does, not what the limits let in (docs/performance.md).
    // Nothing expires while the figures are taken, however slowly a busy machine takes them.
    control: {
      port: 443,
      perSourceRate: 100000,
      unprovenRate: 1000000,
      sessionIdleSec: 86400,
      mappingLifetimeSec: 86400,
    },
    stateDir: join(tmp, 'state'),
    ldap: {
      url: 'ldaps://directory.invalid',
      caFile: '/dev/null',
      baseDn: 'dc=corp,dc=example',
      bindDn: 'cn=gw',
      passwordFile: join(tmp, 'pw'),
      // The snapshot is refreshed only when the bench asks (init, reload): it must not turn stale
      // (refreshSec sets the staleness limit) however long a slow machine takes over the figures.
      refreshSec: 3600,
    },
    dns: { enabled: false },
  });
  const before = mem();
  dir = new BenchDirectory(users);
  plane = new LinuxDataPlane({
    ggr: GGR,
    pgr: '10.0.0.1',
    ports: { first: config.ports.first, last: config.ports.last },
    queues: [0, 1],
    interfaces: ['wan0', 'lan0'],
  });
  daemon = new GatewayDaemon(config, {
    logger: createLogger('gateway', { stream: sink, level: 'info' }),
    directory: dir.asClient(),
    dataPlane: plane,
  });
  // Not started (no socket, no queue): the daemon's replies are captured here instead of sent.
  (daemon as unknown as { sockets: unknown }).sockets = {
    send: (data: Uint8Array, to: { addr: string; port: number }) => {
      captured.push({ data: Buffer.from(data), to: { addr: to.addr, port: to.port } });
      return true;
    },
    queued: () => ({ priority: 0, bulk: 0 }),
    listening: true,
    close: () => {},
  };
  const t0 = process.hrtime.bigint();
  await daemon.policy.refresh();
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { loadMs, before, after: mem() };
}

async function handle(m: Msg): Promise<unknown> {
  switch (m.op) {
    case 'init':
      return init(m.users!);
    case 'phase':
      phase = m.name!;
      return {};
    case 'dgram': {
      captured = [];
      await timed(() => daemon!.handle(m.data!, m.from!));
      return { send: captured };
    }
    case 'time': {
      const s = spent.get(m.name!) ?? { ns: 0n, cpuUs: 0, calls: 0 };
      return { ms: Number(s.ns) / 1e6, cpuMs: s.cpuUs / 1000, calls: s.calls };
    }
    case 'mem':
      return mem();
    case 'reload': {
      // Load alone (nothing changed: nothing to re-decide), then a refresh that removes one user
      // from the group, which makes the daemon decide every session and reservation again.
      const t0 = process.hrtime.bigint();
      await daemon!.policy.refresh();
      const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
      dir!.removed.add(m.remove!);
      const t1 = process.hrtime.bigint();
      await daemon!.reload();
      const reloadMs = Number(process.hrtime.bigint() - t1) / 1e6;
      return { loadMs, reloadMs, sessionsAfter: daemon!.control.stats().sessions };
    }
    case 'stats':
      return { ...daemon!.control.stats(), portsInUse: daemon!.pool.inUse, engine: plane!.stats() };
    default:
      throw new Error(`unknown op ${m.op}`);
  }
}

process.on('message', (m: Msg) => {
  handle(m).then(
    (r) => process.send!({ id: m.id, ok: true, r }),
    (e: unknown) => process.send!({ id: m.id, ok: false, error: (e as Error).stack ?? String(e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // a clean exit (writes a --cpu-prof profile)
