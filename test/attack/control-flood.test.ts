// Floods of the control port (issue 11, item 2), while alice downloads and bob logs in:
// - 20 000 AUTHs with random user ids, from the attacker's own address, on cookies it asked for;
// - 20 000 HELLOs in 10 s from 150 spoofed addresses on the gateway's own internet segment,
//   which answer no ARP: every COOKIE to them would sit in the kernel, charged to its socket.
// Per-source limits drop most of them unanswered, one cookie carries at most 4 AUTHs, answers to
// unproven sources come from a budget on a socket of their own and are shed when it is
// congested; session traffic never waits behind them. Checked: bob's login during each flood
// (≤ 2 s), alice's paced download (sha256, alive throughout), full service right after, the
// gateway's memory (RSS before/after) and its summary log line.
import t from 'tap';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { IN1, IN2, type GsraLab } from '../e2e/gsra-lab.ts';
import { attack, controlLab, gatewayRssKb, gatewayStatus, lines, pacedDownload } from './control-lab.ts';

/** Starts bob's agent on en2 (stopping a previous one) and measures his login: HELLO to AUTH_OK. */
async function bobLogsIn(g: GsraLab, skipLogin: boolean): Promise<number> {
  const old = g.agents.en2;
  if (old) await g.lab.stop(old.proc);
  const before = old ? lines(g, old.logFile, 'session up').length : 0;
  const bob = await g.startAgent('en2', 'bob', { skipLogin, waitUp: false });
  await waitFor('bob’s session', () => lines(g, bob.logFile, 'session up').length > before, 15_000, 50);
  const at = (m: string) => Date.parse(String(lines(g, bob.logFile, m).at(-1)!.timestamp));
  return at('session up') - at('logging in');
}

t.test('control-plane floods while alice downloads and bob logs in', async (t) => {
  const g = await controlLab({ ens: 2 });
  t.teardown(() => g.stop());
  const ok = await g.lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`]);
  t.equal(ok.stdout, '<h1>hello from in1</h1>\n', 'alice reaches intra1');
  const quiet = await bobLogsIn(g, false);
  t.comment(`bob's login without a flood: ${quiet} ms`);
  const rss0 = gatewayRssKb(g);

  for (const flood of ['auth', 'hello'] as const) {
    await t.test(
      `${flood === 'auth' ? '20 000 AUTHs with random ids' : '20 000 HELLOs in 10 s from 150 spoofed addresses'}`,
      async (t) => {
        const dl = pacedDownload(g, `${flood}.bin`, 24, '2M'); // about 12 s
        await new Promise((r) => setTimeout(r, 500));
        const args =
          flood === 'auth'
            ? ['auth-flood', ADDR.gwWan, '4430', '20000', '10']
            : ['hello-spoof', ADDR.gwWan, '4430', '20000', '10', '203.0.113.100', '150'];
        const running = attack(g, args);
        await new Promise((r) => setTimeout(r, 3000)); // well into the flood
        const login = await bobLogsIn(g, true);
        t.ok(login <= 2000, `bob logged in during the flood in ${login} ms`);
        const mid = await g.lab.exec('en2', ['curl', '-sS', '-m', '5', `http://${IN2}/`], {
          allowFail: true,
        });
        t.equal(mid.stdout, '<h1>hello from in2</h1>\n', 'and bob reaches intra2 during the flood');
        const sent = await running;
        t.comment(`attacker: ${JSON.stringify(sent)}`);
        t.equal(sent.sent, 20000, 'the whole flood was sent');
        const r = await dl.result();
        t.equal(
          r.code,
          0,
          `alice's download completed during the flood (${r.secs.toFixed(1)} s) ${r.stderr}`,
        );
        t.ok(r.intact, 'sha256 equal');
        t.equal(lines(g, g.agents.en1!.logFile, 'session down').length, 0, 'alice’s session never went down');

        // full service right after
        const after = Date.now();
        const again = await g.lab.exec('en1', ['curl', '-sS', '-m', '5', `http://${IN1}/`]);
        t.equal(
          again.stdout,
          '<h1>hello from in1</h1>\n',
          `a new connection right after (${Date.now() - after} ms)`,
        );
        const relogin = await bobLogsIn(g, true);
        t.ok(relogin <= 2000, `a new login right after: ${relogin} ms`);

        const st = await gatewayStatus(g);
        t.ok(st.control.sessions <= 3, `sessions at the gateway: ${st.control.sessions} (no flood state)`);
        t.ok(st.control.helloSources <= 16_384 && st.control.authSources <= 16_384, 'bounded limiter tables');
        if (flood === 'auth') {
          const denied = g
            .logLines(g.gatewayLog)
            .filter((l) => l.message === 'access refused' && l.step === 'auth');
          t.ok(
            denied.length < 2000,
            `the gateway decided ${denied.length} of 20 000 AUTHs; the rest cost a token-bucket look-up`,
          );
        }
      },
    );
  }

  await t.test(
    'the gateway said what happened, once per interval, and its memory stayed bounded',
    async (t) => {
      await waitFor(
        'the load summary',
        () =>
          lines(g, g.gatewayLog, 'control plane under load: legitimate sessions keep priority').length > 0,
        12_000,
        200,
      ).catch(() => {});
      const summaries = lines(g, g.gatewayLog, 'control plane under load: legitimate sessions keep priority');
      t.ok(
        summaries.length >= 1 && summaries.length <= 10,
        `${summaries.length} summary lines for 40 000 datagrams`,
      );
      t.comment(`summary: ${JSON.stringify(summaries.at(-1))}`);
      const metrics = (await g.lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/metrics'])).stdout;
      const shed = [...metrics.matchAll(/^gsra_gateway_control_shed_total\{kind="([a-z-]+)"\} (\d+)/gm)];
      t.ok(shed.length > 0, `shed counters: ${shed.map((m) => `${m[1]}=${m[2]}`).join(', ')}`);
      const rss1 = gatewayRssKb(g);
      t.comment(`gateway RSS: ${Math.round(rss0 / 1024)} MiB before, ${Math.round(rss1 / 1024)} MiB after`);
      t.ok(rss1 - rss0 < 64 * 1024, `RSS grew by ${Math.round((rss1 - rss0) / 1024)} MiB (< 64 MiB)`);
    },
  );
});
