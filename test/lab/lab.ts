// The network-namespace lab: builds the topology in topology.ts on demand, runs commands and
// servers inside it, and always tears it down — on destroy(), on process exit, on SIGINT/SIGTERM,
// and (for a run that was killed with SIGKILL) by sweeping stale labs at the next create().
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNs, run, startProc, waitFor, type Proc, type RunOptions, type RunResult } from './exec.ts';
import { ADDR, HOSTS, SWITCHES, type HostName, type SwitchName } from './topology.ts';

export { ADDR, type HostName, type SwitchName };

export type NatKind = 'preserving' | 'symmetric';

export interface LabOptions {
  /** The home router's NAT: port-preserving MASQUERADE (default) or symmetric (--random-fully). */
  nat?: NatKind;
  /** How many teleworker PCs behind the home router (default 1: en1; 2 adds en2). */
  ens?: 1 | 2;
  /** Segmentation/receive offloads on the hosts' veths (default true, the veth default). */
  offloads?: boolean;
}

/** Lab namespaces are named gsra<pid>n<k>-<node>: the pid lets a later run find a dead run's leftovers. */
const NS_RE = /^gsra(\d+)n(\d+)-[a-z0-9]+$/;
let counter = 0;
const live = new Set<Lab>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Every namespace any lab made that still exists (used by tests to prove cleanup). */
export function labNamespaces(): string[] {
  return listNamespaces().filter((n) => NS_RE.test(n));
}

/** Kill everything in ns, delete it and its /etc/netns files. Synchronous: safe in exit handlers. */
function removeNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // namespace already gone
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  rmSync(join('/etc/netns', ns), { recursive: true, force: true });
}

/** Remove labs left behind by runs whose process no longer exists (e.g. killed with SIGKILL). */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  for (const ns of labNamespaces()) {
    const pid = Number(NS_RE.exec(ns)![1]);
    if (!pidAlive(pid)) {
      removeNamespaceSync(ns);
      removed.push(ns);
    }
  }
  return removed;
}

let handlersInstalled = false;
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of live) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.destroySync();
      process.kill(process.pid, sig); // handlers are 'once': this time the default action applies
    });
  }
}

export class Lab {
  readonly id: string;
  readonly nat: NatKind;
  readonly hosts: HostName[];
  /** A private directory for this lab's files (configs, captures, downloads). */
  readonly dir: string;
  private procs = new Set<Proc>();
  private destroyed = false;

  private constructor(opts: LabOptions) {
    this.id = `gsra${process.pid}n${counter++}`;
    this.nat = opts.nat ?? 'preserving';
    this.hosts = ['en1', 'hr', 'gw', 'attacker', 'in1', 'in2', 'dir'];
    if (opts.ens === 2) this.hosts.splice(1, 0, 'en2');
    this.dir = mkdtempSync(join(tmpdir(), `${this.id}-`));
    chmodSync(this.dir, 0o755); // servers that drop privileges (vsftpd) read below it
  }

  /** Namespace name of a host or switch. */
  ns(node: HostName | SwitchName): string {
    return `${this.id}-${node}`;
  }

  get namespaces(): string[] {
    return [...SWITCHES, ...this.hosts].map((n) => this.ns(n));
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces, iptables)');
    installExitHandlers();
    sweepStaleLabs();
    const lab = new Lab(opts);
    live.add(lab);
    try {
      await lab.build(opts);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private async build(opts: LabOptions): Promise<void> {
    const ip = (...a: string[]) => run(['ip', ...a]);
    const sysctl = (ns: string, ...kv: string[]) => run(inNs(ns, ['sysctl', '-qw', ...kv]));
    for (const ns of this.namespaces) {
      await ip('netns', 'add', ns);
      mkdirSync(join('/etc/netns', ns), { recursive: true });
    }
    await Promise.all(
      this.namespaces.map(async (ns) => {
        await ip('-n', ns, 'link', 'set', 'lo', 'up');
        await sysctl(ns, 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      }),
    );
    await Promise.all(
      SWITCHES.map(async (sw) => {
        const ns = this.ns(sw);
        await ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
        await ip('-n', ns, 'link', 'set', 'br0', 'up');
        // A switch only switches: no iptables on bridged frames, whatever br_netfilter says.
        await run(inNs(ns, ['sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=0']), { allowFail: true });
      }),
    );
    for (const host of this.hosts) {
      const spec = HOSTS[host];
      const ns = this.ns(host);
      for (const ifc of spec.ifaces) {
        const sw = this.ns(ifc.switch);
        await ip('link', 'add', ifc.name, 'netns', ns, 'type', 'veth', 'peer', 'name', ifc.port, 'netns', sw);
        await ip('-n', sw, 'link', 'set', ifc.port, 'master', 'br0', 'up');
        await ip('-n', ns, 'addr', 'add', `${ifc.addr}/24`, 'dev', ifc.name);
        await ip('-n', ns, 'link', 'set', ifc.name, 'up');
        if (opts.offloads === false) {
          await run(inNs(ns, ['ethtool', '-K', ifc.name, 'tso', 'off', 'gso', 'off', 'gro', 'off']));
        }
      }
      if (spec.gateway) await ip('-n', ns, 'route', 'add', 'default', 'via', spec.gateway);
      if (spec.forward) await sysctl(ns, 'net.ipv4.ip_forward=1');
      writeFileSync(
        join('/etc/netns', ns, 'resolv.conf'),
        `nameserver ${spec.nameserver}\noptions timeout:1 attempts:2\n`,
      );
    }
    // The home router: an ordinary NAT the product does not control.
    const masq = ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE'];
    if (this.nat === 'symmetric') masq.push('--random-fully');
    await run(inNs(this.ns('hr'), masq));
    // The office edge's baseline: from the internet, only packets addressed to the gateway itself
    // get in. Nothing on the internet segment can reach a LAN address by routing through it.
    await run(
      inNs(this.ns('gw'), [
        'iptables',
        '-t',
        'raw',
        '-A',
        'PREROUTING',
        '-i',
        'wan0',
        '!',
        '-d',
        ADDR.gwWan,
        '-j',
        'DROP',
      ]),
    );
  }

  /** Run a command inside a host's namespace. */
  exec(host: HostName | SwitchName, argv: string[], opts?: RunOptions): Promise<RunResult> {
    return run(inNs(this.ns(host), argv), opts);
  }

  /** Start a long-running process inside a host's namespace; stopped at teardown. */
  spawn(
    host: HostName | SwitchName,
    name: string,
    argv: string[],
    env?: NodeJS.ProcessEnv,
    logFile?: string,
  ): Proc {
    const p = startProc(`${host}:${name}`, inNs(this.ns(host), argv), env ? { env } : {}, logFile);
    this.procs.add(p);
    return p;
  }

  /** Stop a process started with spawn(). */
  async stop(p: Proc): Promise<void> {
    await p.stop();
    this.procs.delete(p);
  }

  /** True once something accepts TCP connections at addr:port, as seen from host. */
  async tcpOpen(host: HostName, addr: string, port: number): Promise<boolean> {
    const r = await this.exec(host, ['bash', '-c', `exec 3<>/dev/tcp/${addr}/${port}`], {
      allowFail: true,
      timeoutMs: 2000,
    });
    return r.code === 0;
  }

  async waitTcp(host: HostName, addr: string, port: number, timeoutMs = 5000): Promise<void> {
    await waitFor(`${addr}:${port} from ${host}`, () => this.tcpOpen(host, addr, port), timeoutMs);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.procs].map((p) => p.stop('SIGTERM', 1000)));
    this.procs.clear();
    this.destroySync();
  }

  /** Synchronous teardown for exit handlers: kills every process in the lab, deletes everything. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.procs) p.child.kill('SIGKILL');
    for (const ns of this.namespaces) removeNamespaceSync(ns);
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}
