// Roaming (docs/pccom.md §6.1): the home router loses every mapping (conntrack flushed) in the
// middle of a download, behind a port-preserving and behind a symmetric NAT, with a server that
// answers a request and with one that speaks first; the download finishes intact and the longest
// stall stays under 2 s (a correctness bound: without roaming the download never resumes). And a
// UDP flow that stays idle longer than the NAT's UDP timeout still hears its server afterwards,
// because the agent keeps the mapping alive — while a plain UDP flow beside it is lost.
// `npm test`: a 5 s NAT UDP timeout, a 2 s keepalive, 12 s of silence; `npm run test:long`
// (GSRA_LONG=1): Linux's 30 s, the default 25 s keepalive, 60 s of silence.
import t from 'tap';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { makeRandomFile } from '../lab/services.ts';
import { startGsraLab, IN1 } from './gsra-lab.ts';
import { SERVERS, downloadThroughFlush, startPaced } from './roaming-lab.ts';
const LONG = process.env.GSRA_LONG === '1';
/** The longest a download may stand still after the flush: the bound. */
const STALL_BOUND_MS = 2000;
const SIZE = 8 * 1024 * 1024 + 13;

for (const nat of ['preserving', 'symmetric'] as const) {
  t.test(`a download survives the ${nat} home NAT losing its mappings`, async (t) => {
    const g = await startGsraLab({ nat });
    t.teardown(() => g.stop());
    await g.startAgent('en1', 'alice');
    const want = makeRandomFile(join(g.lab.dir, 'stream.bin'), SIZE);
    await startPaced(g, 9100, join(g.lab.dir, 'stream.bin'), false);
    await startPaced(g, 9101, join(g.lab.dir, 'stream.bin'), true);

    for (const [port, mode, who] of [
      [9100, 'request', 'the client asks, the server answers'],
      [9101, 'listen', 'the server speaks first'],
    ] as const) {
      await t.test(`${who}: conntrack -F mid-download, sha256 equal, stall < 2 s`, async (t) => {
        const { r, flushAt, flushed } = await downloadThroughFlush(g, port, mode, 'receiving', 500);
        t.match(
          flushed,
          /table has been emptied|flow entries have been deleted/,
          'the home router forgot its mappings',
        );
        t.ok(r.firstAt < flushAt && flushAt < r.lastAt, 'the flush landed in the middle of the download');
        t.equal(r.how, 'end', 'the server closed the stream: it got through');
        t.equal(r.bytes, SIZE);
        t.equal(r.sha256, want, 'sha256 equal');
        t.ok(r.maxGapMs < STALL_BOUND_MS, `longest stall ${r.maxGapMs} ms < ${STALL_BOUND_MS} ms`);
        t.comment(`${nat} NAT, ${who}: longest stall ${r.maxGapMs} ms, ${r.gapAtMs} ms into the download`);
      });
    }

    if (nat === 'symmetric')
      await t.test('the gateway followed the flows to their new public ports, and logged it', async (t) => {
        const roamed = g.logLines(g.gatewayLog).filter((l) => l.message === 'flow roamed');
        t.ok(roamed.length >= 2, `${roamed.length} 'flow roamed' lines (one per download at least)`);
        const l = roamed[0]!;
        t.match(l, { proto: 'tcp', from: /^203\.0\.113\.2:\d+$/, to: /^203\.0\.113\.2:\d+$/ });
        t.not(l.from, l.to, 'another public port');
      });
  });
}

t.test(
  'the agent sees its public address change and every flow re-binds before its server speaks',
  async (t) => {
    // Only the control channel can notice here: the flow is idle when the mappings go, the server
    // speaks 4 s later, and the agent's other probes are off (no keepalive, no quiet probes).
    const g = await startGsraLab({
      nat: 'symmetric',
      control: { keepaliveSec: 1, mappingLifetimeSec: 30, sessionIdleSec: 60 },
    });
    t.teardown(() => g.stop());
    const alice = await g.startAgent('en1', 'alice', {
      config: { roaming: { persistentKeepaliveSec: 0, quietProbeMs: 0 } },
    });
    const size = 1024 * 1024;
    const want = makeRandomFile(join(g.lab.dir, 'late.bin'), size);
    await startPaced(g, 9102, join(g.lab.dir, 'late.bin'), 4000);
    // The first KEEPALIVE (1 s after the session came up) teaches the agent its address.
    await sleep(1200);
    const { r, flushAt } = await downloadThroughFlush(g, 9102, 'listen', 'connected', 1500);
    t.ok(flushAt < r.firstAt, 'the mappings went while the flow was idle, before the server spoke');
    t.equal(r.how, 'end');
    t.equal(r.sha256, want, 'the server’s stream arrived whole');
    const changed = g.logLines(alice.logFile).find((l) => l.message === 'public address changed');
    t.match(changed, { from: /^203\.0\.113\.2:\d+$/, to: /^203\.0\.113\.2:\d+$/ }, 'logged by the agent');
    t.ok(Number(changed?.probes) >= 1, `every live flow sent a probe (${changed?.probes})`);
    t.ok(
      g.logLines(g.gatewayLog).some((l) => l.message === 'flow roamed'),
      'the gateway moved the flow on the probe',
    );
  },
);

t.test('a UDP flow idle longer than the symmetric NAT’s UDP timeout still hears its server', async (t) => {
  const natUdpSec = LONG ? 30 : 5;
  const keepaliveSec = LONG ? 25 : 2;
  const idleMs = LONG ? 60_000 : 12_000;
  const g = await startGsraLab({ nat: 'symmetric' });
  t.teardown(() => g.stop());
  await g.lab.exec('hr', [
    'sysctl',
    '-qw',
    `net.netfilter.nf_conntrack_udp_timeout=${natUdpSec}`,
    `net.netfilter.nf_conntrack_udp_timeout_stream=${natUdpSec}`,
  ]);
  const alice = await g.startAgent('en1', 'alice', {
    config: { roaming: { persistentKeepaliveSec: keepaliveSec, quietProbeMs: 500 } },
  });
  // The same server twice: inside the office (through GSRA) and on the internet (plain UDP
  // through the same NAT, the control group: nothing keeps its mapping).
  for (const [host, addr] of [
    ['in1', ADDR.in1],
    ['attacker', ADDR.attacker],
  ] as const) {
    const argv = ['node', join(SERVERS, 'udp-late.mjs'), addr, '9200', String(idleMs)];
    const p = g.lab.spawn(host, 'udp-late', argv);
    await waitFor(`udp-late on ${host}`, () => p.log.includes('listening') || !p.running);
  }
  const client = (dest: string) =>
    g.lab
      .exec('en1', ['node', join(SERVERS, 'udp-late-client.mjs'), dest, '9200', String(idleMs + 5000)], {
        timeoutMs: idleMs + 15_000,
      })
      .then((r) => JSON.parse(r.stdout) as { ackMs: number | null; lateMs: number | null });
  const [viaGsra, plain] = await Promise.all([client(IN1), client(ADDR.attacker)]);
  t.ok(plain.ackMs !== null, 'the plain flow got its immediate answer');
  t.equal(plain.lateMs, null, `the plain flow lost its mapping after ${natUdpSec} s: the NAT really forgets`);
  t.ok(viaGsra.ackMs !== null, 'the GSRA flow got its immediate answer');
  t.ok(
    viaGsra.lateMs !== null && viaGsra.lateMs >= idleMs,
    `after ${idleMs / 1000} s of silence the server's datagram reached the application (${viaGsra.lateMs} ms)`,
  );
  const probes = (await alice.status()).engine.probesSent ?? 0;
  const due = Math.floor(idleMs / (keepaliveSec * 1000)) - 1;
  t.ok(probes >= due, `${probes} keepalive probes kept the mapping (≥ ${due} expected)`);
});
