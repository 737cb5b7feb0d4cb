// The slapd fixture itself: fast start, clean stop, nothing left behind by a process that
// exits or is killed without calling stop().
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSlapd } from '../src/fixture/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'gsra-fixture-test-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

/** Running (a zombie waiting for init to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

t.test('starts in well under a second and stop() kills slapd and removes its directory', async (t) => {
  const t0 = Date.now();
  const fx = await startSlapd();
  const ms = Date.now() - t0;
  t.ok(ms < 2000, `started in ${ms} ms`);
  const pid = fx.pid as number;
  t.ok(alive(pid), 'slapd runs');
  t.ok(existsSync(fx.dir));
  await fx.stop();
  t.ok(await waitGone(pid), 'slapd gone');
  t.notOk(existsSync(fx.dir), 'directory removed');
  await fx.stop(); // idempotent
});

t.test(
  'a port another process holds is reported as in use (what the retry on random ports looks for)',
  async (t) => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    t.teardown(() => holder.close());
    const taken = (holder.address() as AddressInfo).port;
    await t.rejects(
      startSlapd({ ports: { ldap: taken, ldaps: taken + 1 }, demo: false }),
      /slapd exited during start-up \(code 1\):[^]*failed errno=98 \(Address already in use\)/,
    );
  },
);

t.test('two fixtures at once get different ports', async (t) => {
  const [a, b] = await Promise.all([startSlapd(), startSlapd()]);
  t.not(a.ldapsPort, b.ldapsPort);
  await Promise.all([a.stop(), b.stop()]);
});

for (const how of ['exit', 'SIGTERM', 'SIGINT'] as const) {
  t.test(`a process that ends by ${how} without stop() leaves no slapd behind`, async (t) => {
    const script = join(scratch, `child-${how}.mts`);
    const fixture = join(here, '..', 'src', 'fixture', 'index.ts');
    writeFileSync(
      script,
      `import { startSlapd } from ${JSON.stringify(fixture)};
const fx = await startSlapd();
process.stdout.write(JSON.stringify({ pid: fx.pid, dir: fx.dir }) + '\\n');
// 'exit': exits by itself once told (SIGUSR2), after the parent has seen slapd alive.
${how === 'exit' ? "process.on('SIGUSR2', () => process.exit(0));\n" : ''}setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: join(here, '..', '..'),
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (b: Buffer) => {
        buf += b.toString();
        if (buf.includes('\n')) resolve(buf.split('\n')[0] as string);
      });
      child.once('exit', (c) => reject(new Error(`child exited early (${c})`)));
    });
    const { pid, dir } = JSON.parse(line) as { pid: number; dir: string };
    t.ok(alive(pid), 'slapd started by the child');
    child.kill(how === 'exit' ? 'SIGUSR2' : how);
    await new Promise((r) =>
      child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
    );
    t.ok(await waitGone(pid), 'slapd killed');
    t.notOk(existsSync(dir), 'directory removed');
  });
}
