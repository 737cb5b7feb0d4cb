// Flows that survive a crash of either daemon (docs/reliability.md): `kill -9` of gsra-gateway in
// the middle of a download, started again 3 s later; `kill -9` of gsra-agent, started again 2 s
// later. Each time the download completes with its sha256, nobody logs in again, one session per
// user stays at the gateway, and nothing leaves the home router with a private source meanwhile
// (a capture of the home router's internet side). The figures (stall, time to recover) are
// printed as `# figure ...` comments for docs/reliability.md.
import t from 'tap';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, NETS } from '../lab/topology.ts';
import { waitFor } from '../lab/exec.ts';
import { makeRandomFile, sha256File, startCapture } from '../lab/services.ts';
import { startGsraLab, IN1, type GsraLab } from './gsra-lab.ts';

/** Big enough to be cut in the middle, paced so each download takes about 8 s without a crash. */
const SIZE = 128 * 1024 * 1024;
const RATE = '16M';

const sizeOf = (f: string) => (existsSync(f) ? statSync(f).size : 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  code: number | null;
  stderr: string;
  /** sha256 of the file served, and of the file received. */
  want: string;
  sha: string;
  /**
   * From the kill to the end of the longest stall after it: when bytes came again after the
   * outage (curl's socket buffer hides the first part of the outage: see stallMs).
   */
  recoverMs: number;
  /** The longest time no byte arrived after the kill. */
  stallMs: number;
  /** The whole download (about 8 s without a crash). */
  totalMs: number;
  /** Packets on the internet that left the home router with a private source. */
  leaked: number;
  /** FINs that left the home router translated (the capture saw the end of the download). */
  fins: number;
}

/** Downloads a file from intra1 on en1 and runs `crash` once a quarter of it arrived. */
async function downloadThrough(g: GsraLab, name: string, crash: () => Promise<void>): Promise<Outcome> {
  const lab = g.lab;
  const want = makeRandomFile(join(g.web1.root, name), SIZE);
  const out = join(lab.dir, `${name}.out`);
  // Everything the home router sends to the internet must carry its public address (hrWan).
  const leaks = await startCapture(lab, 'inet', 'br0', ['ip', 'and', 'not', 'src', 'net', NETS.inet]);
  const fins = await startCapture(lab, 'inet', 'br0', [
    'src',
    'host',
    ADDR.hrWan,
    'and',
    'tcp[tcpflags] & tcp-fin != 0',
  ]);
  const dl = lab.exec(
    'en1',
    ['curl', '-sS', '-o', out, '--limit-rate', RATE, '-m', '90', `http://${IN1}/${name}`],
    { allowFail: true, timeoutMs: 100_000 },
  );
  let done = false;
  void dl.finally(() => (done = true));
  // the longest stall after the kill, watched by size every 50 ms
  const started = Date.now();
  let stallMs = 0;
  let last = { size: 0, at: Date.now() };
  let killedAt = 0;
  let recoverMs = -1;
  const watch = setInterval(() => {
    const now = Date.now();
    const size = sizeOf(out);
    if (size === last.size) return;
    if (killedAt && now - last.at > stallMs) {
      stallMs = now - last.at;
      recoverMs = now - killedAt;
    }
    last = { size, at: now };
  }, 50);
  try {
    await waitFor('a quarter of the download', () => done || sizeOf(out) >= SIZE / 4, 30_000, 50);
    killedAt = Date.now();
    await crash();
    const r = await dl;
    return {
      code: r.code,
      stderr: r.stderr,
      want,
      sha: existsSync(out) ? sha256File(out) : '',
      recoverMs,
      stallMs,
      totalMs: Date.now() - started,
      leaked: (await leaks.stop()).length,
      fins: (await fins.stop()).length,
    };
  } finally {
    clearInterval(watch);
    if (!done) await dl.catch(() => {});
  }
}

t.test('live flows survive kill -9 of either daemon', async (t) => {
  const g = await startGsraLab({ nat: 'preserving' });
  t.teardown(() => g.stop());
  const alice = await g.startAgent('en1', 'alice');
  const lab = g.lab;
  const gwLines = (msg: string) => g.logLines(g.gatewayLog).filter((l) => l.message === msg);
  const aliceLogins = () => gwLines('session up').filter((l) => l.user === 'alice').length;
  const gwStatus = async () =>
    JSON.parse((await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/status'])).stdout);
  // a first request: the name has its VIN, the session is up
  await lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);

  await t.test('gsra-gateway killed mid-download, started again 3 s later', async (t) => {
    const logins = aliceLogins();
    const o = await downloadThrough(g, 'gw-crash.bin', async () => {
      await g.killGateway();
      await sleep(3000);
      await g.startGateway();
    });
    t.equal(o.code, 0, `curl completed ${o.stderr}`);
    t.equal(o.sha, o.want, 'sha256 equal');
    t.equal(o.leaked, 0, 'no packet left the home router with a private source');
    t.ok(o.fins >= 1, `the capture saw the download end (${o.fins} FIN from the home router)`);
    t.equal(aliceLogins(), logins, 'no new login: the agent kept its session');
    const restored = gwLines('state restored').at(-1);
    t.match(restored, { flowsCarried: Number, flowsLost: 0 }, 'the restarted gateway carried the flow');
    t.ok(Number(restored?.flowsCarried) >= 1, `flows carried: ${String(restored?.flowsCarried)}`);
    t.comment(
      `figure gateway-kill: bytes again ${o.recoverMs} ms after the kill (stall ${o.stallMs} ms), download ${o.totalMs} ms`,
    );
  });

  await t.test('gsra-agent killed mid-download, started again 2 s later', async (t) => {
    const logins = aliceLogins();
    let upAfterMs = 0;
    const o = await downloadThrough(g, 'agent-crash.bin', async () => {
      const k = Date.now();
      await g.killAgent('en1');
      await sleep(2000);
      await g.restartAgent('en1');
      upAfterMs = Date.now() - k;
    });
    t.equal(o.code, 0, `curl completed ${o.stderr}`);
    t.equal(o.sha, o.want, 'sha256 equal');
    t.equal(o.leaked, 0, 'no packet left the home router with a private source');
    t.ok(o.fins >= 1, `the capture saw the download end (${o.fins} FIN from the home router)`);
    t.equal(aliceLogins(), logins, 'no new login: the restarted agent resumed its session');
    const st = await gwStatus();
    if (st.control.sessions !== 1)
      t.comment(
        g
          .logLines(g.gatewayLog)
          .filter((l) => /session|auth|hello|login|restor/i.test(String(l.message)))
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
    t.equal(st.control.sessions, 1, 'one session at the gateway: the old one does not linger');
    const restored = g
      .logLines(alice.logFile)
      .filter((l) => l.message === 'state restored')
      .at(-1);
    t.ok(Number(restored?.flows) >= 1, `the agent put its flow back (${String(restored?.flows)})`);
    t.comment(
      `figure agent-kill: agent up ${upAfterMs} ms after the kill, bytes again ${o.recoverMs} ms after it (stall ${o.stallMs} ms), download ${o.totalMs} ms`,
    );
  });
});
