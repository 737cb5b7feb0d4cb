// What the control-plane attack tests share: the GSRA lab with alice (and optionally bob) logged
// in, the attacker's tool (tools/control-attack.py, run in the attacker's namespace), a paced
// download checked by sha256, and the daemons' log lines and memory.
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGsraLab, IN1, type GsraLab } from '../e2e/gsra-lab.ts';
import { makeRandomFile, sha256File } from '../lab/services.ts';
import type { HostName } from '../lab/lab.ts';

export const TOOL = join(dirname(fileURLToPath(import.meta.url)), 'tools', 'control-attack.py');

/** The lab with alice's agent on en1 (and a second PC, en2, for bob). */
export async function controlLab(opts: { ens?: 1 | 2 } = {}): Promise<GsraLab> {
  const g = await startGsraLab({ ens: opts.ens ?? 1 });
  try {
    await g.startAgent('en1', 'alice');
  } catch (e) {
    await g.stop();
    throw e;
  }
  return g;
}

/** Runs the attacker's tool (bounded by its own arguments); returns its last JSON line. */
export async function attack(
  g: GsraLab,
  args: string[],
  host: HostName = 'attacker',
): Promise<Record<string, unknown>> {
  const r = await g.lab.exec(host, ['python3', TOOL, ...args], { timeoutMs: 120_000 });
  const last = r.stdout.trim().split('\n').at(-1) ?? '{}';
  return JSON.parse(last) as Record<string, unknown>;
}

/** A download of `mib` MiB from intra1, paced at `rate` (curl --limit-rate), running in the background. */
export function pacedDownload(g: GsraLab, name: string, mib: number, rate: string) {
  const want = makeRandomFile(join(g.web1.root, name), mib * 1024 * 1024);
  const out = join(g.lab.dir, `${name}.out`);
  const started = Date.now();
  const done = g.lab.exec(
    'en1',
    ['curl', '-sS', '--limit-rate', rate, '-m', '90', '-o', out, `http://${IN1}/${name}`],
    { allowFail: true, timeoutMs: 100_000 },
  );
  return {
    started,
    /** Resolves once curl ends: its exit code, whether the file is intact, how long it took. */
    async result() {
      const r = await done;
      let sha = '';
      try {
        sha = sha256File(out);
      } catch {
        // no file
      }
      return { code: r.code, stderr: r.stderr, intact: sha === want, secs: (Date.now() - started) / 1000 };
    },
  };
}

/** The process running the gateway's node: the spawned process or one of its descendants. */
function gatewayPid(g: GsraLab): number {
  const todo = [g.gateway.child.pid!];
  while (todo.length) {
    const pid = todo.shift()!;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (/(^|\/)node$/.test(cmd[0]!) && cmd.some((a) => a.endsWith('gsra-gateway.mjs'))) return pid;
    for (const task of readdirSync(`/proc/${pid}/task`))
      todo.push(
        ...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
      );
  }
  throw new Error('no gateway process');
}

/** Resident memory of the gateway process (kB), from /proc. */
export function gatewayRssKb(g: GsraLab): number {
  const status = readFileSync(`/proc/${gatewayPid(g)}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]);
}

/** The gateway's log lines of this kind (by message). */
export const lines = (g: GsraLab, file: string, message: string) =>
  g.logLines(file).filter((l) => l.message === message);

/** The gateway's ops /status, parsed. */
export async function gatewayStatus(
  g: GsraLab,
): Promise<{ control: { sessions: number; helloSources: number; authSources: number } }> {
  const r = await g.lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/status']);
  return JSON.parse(r.stdout);
}

/** alice's session as the gateway logged it: its id and the agent's public control endpoint. */
export function aliceSession(g: GsraLab): { id: string; addr: string; port: number } {
  const up = lines(g, g.gatewayLog, 'session up')
    .filter((l) => l.user === 'alice')
    .at(-1);
  if (!up) throw new Error('alice has no session');
  const [addr, port] = String(up.en).split(':');
  return { id: String(up.session), addr: addr!, port: Number(port) };
}
