// Forged teardown (issue 11, item 1): an attacker on the internet who saw alice's session id sends
// her agent "unknown-session" refusals spoofed from the gateway's control address and port, with
// no reset token and with guessed ones, during a download. Only the gateway can prove a session
// is gone (the reset token of AUTH_OK, derived from a key it keeps across restarts): the download
// completes intact, alice is not logged in again, no session piles up at the gateway.
import t from 'tap';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { IN1 } from '../e2e/gsra-lab.ts';
import { aliceSession, attack, controlLab, gatewayStatus, lines, pacedDownload } from './control-lab.ts';

t.test('forged unknown-session refusals against a live download', async (t) => {
  const g = await controlLab();
  t.teardown(() => g.stop());
  const alice = g.agents.en1!;
  const first = (await g.lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`])).stdout;
  t.equal(first, '<h1>hello from in1</h1>\n', 'alice reaches intra1');
  const session = aliceSession(g);
  const sessionsUp = lines(g, g.gatewayLog, 'session up').length;

  // 12 MiB at 2 MiB/s: the download runs about 6 s, the forgeries 4 s of it.
  const dl = pacedDownload(g, 'teardown.bin', 12, '2M');
  await new Promise((r) => setTimeout(r, 1000));
  const sent = await attack(g, [
    'teardown',
    ADDR.gwWan,
    '4430',
    session.addr,
    String(session.port),
    session.id,
    '4',
    '50',
  ]);
  t.equal(sent.sent, 200, '200 forged refusals sent (half without a token, half with a guessed one)');
  const r = await dl.result();
  t.equal(r.code, 0, `the download completed (${r.secs.toFixed(1)} s) ${r.stderr}`);
  t.ok(r.intact, 'sha256 equal');

  await t.test('the agent did not believe them, and said so', async (t) => {
    await waitFor(
      'the agent’s log line',
      () => lines(g, alice.logFile, 'unauthenticated teardown ignored: asking the gateway').length > 0,
      3000,
    ).catch(() => {});
    t.ok(
      lines(g, alice.logFile, 'unauthenticated teardown ignored: asking the gateway').length > 0,
      'logged: unauthenticated teardown ignored',
    );
    t.equal(lines(g, alice.logFile, 'session down').length, 0, 'no session down');
    const st = await alice.status();
    t.same(
      st.groups.map((x) => x.session),
      ['up'],
      'the session is up',
    );
  });

  await t.test('no re-login, no abandoned session at the gateway', async (t) => {
    t.equal(lines(g, g.gatewayLog, 'session up').length, sessionsUp, 'no new session');
    t.equal(aliceSession(g).id, session.id, 'the same session');
    const st = await gatewayStatus(g);
    t.equal(st.control.sessions, 1, 'one session at the gateway');
  });

  await t.test('a new connection works at once afterwards', async (t) => {
    const again = await g.lab.exec('en1', ['curl', '-sS', '-m', '5', `http://${IN1}/`]);
    t.equal(again.stdout, '<h1>hello from in1</h1>\n');
  });

  await t.test(
    'a gateway restarted without its journal still proves it lost the session: the agent believes it at once',
    async (t) => {
      await g.killGateway();
      // A restarted gateway keeps its sessions (docs/reliability.md): this one lost its journal,
      // as a gateway rebuilt on new storage would, but kept its reset key.
      rmSync(join(g.lab.dir, 'gateway-state', 'state.journal'), { force: true });
      await g.startGateway();
      const t0 = Date.now();
      // The agent's next control message (here: the DNS answer's RESERVE) meets the new gateway,
      // whose answer carries the session's reset token (its reset key is kept in its state dir).
      const r = await g.lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`], { allowFail: true });
      t.equal(r.stdout, '<h1>hello from in1</h1>\n', 'a new connection works on a new session');
      const down = lines(g, alice.logFile, 'session down');
      t.same(
        down.map((l) => l.reason),
        ['unknown-session'],
        'one session down, for the proven reason (not a keepalive timeout)',
      );
      t.ok(Date.now() - t0 < 10_000, `within seconds (${Date.now() - t0} ms)`);
    },
  );
});
