// Connections at a browser's pace (docs/reliability.md): one user opens many short TCP connections
// to one internal web server, each a new flow with its own port at the gateway. In `npm test`: 400
// back to back (one curl, `Connection: close`: a new connection per request) and 1 000 at once.
// With GSRA_LONG=1 (`npm run test:long`): 100 new connections per second for a minute, then
// 1 000 at once again. Every request must succeed: no refusal, no reset, no timeout. The figures
// (latency percentiles, ports in use and cooling afterwards) are printed as `# figure` comments.
import t from 'tap';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGsraLab, IN1 } from './gsra-lab.ts';

const LOAD = join(dirname(fileURLToPath(import.meta.url)), '..', 'lab', 'servers', 'http-load.mjs');
const LONG = process.env.GSRA_LONG === '1';

interface LoadResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  ms: { p50: number; p99: number; max: number };
  seconds: number;
}

t.test('connections at a browser’s pace to one internal host', async (t) => {
  const g = await startGsraLab({ nat: 'preserving' });
  t.teardown(() => g.stop());
  const alice = await g.startAgent('en1', 'alice');
  const lab = g.lab;
  const url = `http://${IN1}/`;
  const gwStatus = async () =>
    JSON.parse((await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/status'])).stdout);
  const limitLines = () => [
    ...g.logLines(g.gatewayLog).filter((l) => l.message === 'limit reached'),
    ...g
      .logLines(alice.logFile)
      .filter(
        (l) =>
          l.level === 'warn' &&
          (/rate-limited|no-ports|refused/.test(String(l.reason ?? '')) ||
            /^connection/.test(String(l.message))),
      ),
  ];
  const load = async (args: string[], timeoutMs: number): Promise<LoadResult> => {
    const r = await lab.exec('en1', ['node', LOAD, url, ...args], { timeoutMs });
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as LoadResult;
  };
  /** On a failure: what each daemon warned about, counted by message and reason. */
  const warnings = () => {
    const count: Record<string, number> = {};
    for (const [who, f] of [
      ['agent', alice.logFile],
      ['gateway', g.gatewayLog],
    ] as const)
      for (const l of g.logLines(f))
        if (l.level === 'warn' || l.level === 'error') {
          const k = `${who}: ${String(l.message)} (${String(l.reason ?? '')})`;
          count[k] = (count[k] ?? 0) + 1;
        }
    return count;
  };
  const figure = async (name: string, r?: LoadResult) => {
    const st = await gwStatus();
    t.comment(
      `figure ${name}: ${r ? `${r.ok} ok in ${r.seconds} s, p50 ${r.ms.p50} ms, p99 ${r.ms.p99} ms, max ${r.ms.max} ms; ` : ''}` +
        `gateway ports in use ${st.ports.inUse}, cooling ${st.ports.cooling}, reservations ${st.control.reservations}`,
    );
  };

  await t.test('400 back-to-back connections all succeed', async (t) => {
    const n = 400;
    const argv = [
      'curl',
      '-sS',
      '-H',
      'Connection: close',
      '-w',
      '%{http_code} %{num_connects}\\n',
      '-m',
      '20',
    ];
    for (let i = 0; i < n; i++) argv.push('-o', '/dev/null', url);
    const t0 = Date.now();
    const r = await lab.exec('en1', argv, { allowFail: true, timeoutMs: 300_000 });
    const lines = r.stdout.trim().split('\n');
    t.equal(r.code, 0, `curl exit code ${r.code} ${r.stderr.slice(0, 300)}`);
    t.equal(lines.filter((l) => l === '200 1').length, n, 'each request answered 200 on a new connection');
    t.same(limitLines(), [], 'no limit bit');
    t.comment(`figure back-to-back: ${n} connections in ${Date.now() - t0} ms`);
    await figure('after back-to-back');
  });

  await t.test('1 000 connections at once all succeed', async (t) => {
    const r = await load(['burst', '1000'], 120_000);
    t.same(r.errors, {}, 'no error');
    if (r.failed) t.comment(JSON.stringify(warnings()));
    t.equal(r.ok, 1000);
    t.same(limitLines(), [], 'no limit bit');
    await figure('burst 1000', r);
  });

  if (LONG)
    await t.test('100 new connections per second for a minute, then 1 000 at once', async (t) => {
      const r = await load(['rate', '100', '60'], 180_000);
      t.same(r.errors, {}, 'no error');
      t.equal(r.ok, 6000);
      await figure('100/s for 60 s', r);
      const b = await load(['burst', '1000'], 120_000);
      t.same(b.errors, {}, 'no error in the burst after the minute');
      t.equal(b.ok, 1000);
      t.same(limitLines(), [], 'no limit bit');
      await figure('burst 1000 after the minute', b);
    });
});
