// Offboarding and a lost directory, end to end with OpenLDAP (slapd with ppolicy): the gateway's
// directory goes away (a live download goes on; after the staleness limit new connections fail
// with words a help desk can act on, in the agent's log and `gsra-agent status`, and work again
// within seconds once it is back); IT locks an account
// (pwdAccountLockedTime): at the first refresh new connections are refused and the live
// download is cut, and an agent restarted with its stored login is refused too.
import t from 'tap';
import { join } from 'node:path';
import { makeRandomFile } from '../lab/services.ts';
import { waitFor } from '../lab/exec.ts';
import { startGsraLab, IN1 } from './gsra-lab.ts';
import { BIG, BIG_SIZE, liveDownload, refusedAtFirstRefresh, untilFlowing } from './offboarding.ts';

t.test('offboarding and a lost directory, with OpenLDAP', async (t) => {
  const g = await startGsraLab({
    refreshSec: 2,
    control: { keepaliveSec: 1, mappingLifetimeSec: 3, sessionIdleSec: 10 },
  });
  t.teardown(() => g.stop());
  const lab = g.lab;
  const slapd = g.directory.slapd!;
  makeRandomFile(join(g.web1.root, BIG), BIG_SIZE);
  let alice = await g.startAgent('en1', 'alice');
  const curl = () => lab.exec('en1', ['curl', '-sS', '-m', '10', `http://${IN1}/`], { allowFail: true });
  const healthz = async () =>
    (
      await lab.exec(
        'gw',
        ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9464/healthz'],
        { allowFail: true },
      )
    ).stdout;

  await t.test(
    'the directory lost: new connections fail in words a help desk can act on, then work again',
    async (t) => {
      t.equal((await curl()).code, 0, 'works while the directory answers');
      // a download that lasts through the loss and the return (16 MiB at 800 kB/s: about 20 s)
      const download = lab.exec(
        'en1',
        [
          'curl',
          '-sS',
          '--limit-rate',
          '800k',
          '-o',
          '/dev/null',
          '-w',
          '%{size_download}',
          `http://${IN1}/${BIG}`,
        ],
        { allowFail: true, timeoutMs: 120_000 },
      );
      await untilFlowing(alice);
      await slapd.kill();
      try {
        // the last snapshot serves for 5 refresh intervals, then the gateway fails closed
        await waitFor('the gateway to fail closed', async () => (await healthz()) === '503', 30_000, 250);
        const from = g.logLines(alice.logFile).length;
        const r = await curl();
        t.not(r.code, 0, 'the new connection fails');
        const lines = g.logLines(alice.logFile).slice(from);
        const line = lines.find((l) => l.reason === 'directory-unavailable');
        t.match(
          line?.message,
          /^intra1\.corp\.example unavailable: the gateway has not been able to read the office directory \(LDAP\) for \d+ (s|min); help desk: check the LDAP server/,
          'the agent logs it in words',
        );
        t.notOk(
          lines.some((l) => /refused: internal/.test(String(l.message))),
          'not "internal"',
        );
        const status = await alice.statusText();
        t.match(status, /unavailable: the gateway has not been able to read the office directory/, status);
      } finally {
        await slapd.start();
      }
      const back = Date.now();
      await waitFor(
        'the gateway to read the directory again',
        async () => (await healthz()) === '200',
        30_000,
        250,
      );
      await waitFor('a new connection to work again', async () => (await curl()).code === 0, 20_000, 250);
      t.pass('back without restarting anything');
      t.comment(
        `figure directory-back: a new connection works ${Date.now() - back} ms after slapd started again`,
      );
      const d = await download;
      t.equal(d.code, 0, `the live download went on through it all ${d.stderr}`);
      t.equal(Number(d.stdout.trim()), BIG_SIZE, 'every byte arrived');
    },
  );

  await t.test(
    'IT locks alice (ppolicy): at the next refresh new connections are refused and the live download is cut',
    async (t) => {
      const live = liveDownload(g, 'en1');
      await untilFlowing(alice);
      await refusedAtFirstRefresh(t, g, 'alice', 'account-disabled', () =>
        g.directory.modify(
          `dn: ${slapd.users.alice.dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n`,
        ),
      );
      const cut = await live;
      t.not(cut.code, 0, `the live download was cut (${cut.stderr.trim()})`);
      t.ok(cut.bytes < BIG_SIZE, `${cut.bytes} of ${BIG_SIZE} bytes arrived`);
      const r = await curl();
      t.not(r.code, 0, 'a new connection is refused');
      const status = await alice.statusText();
      t.match(status, /alice: the account is locked by an administrator; ask IT/, status);
    },
  );

  await t.test('alice’s agent restarted with its stored login is refused too', async (t) => {
    await alice.proc.stop();
    alice = await g.startAgent('en1', 'alice', { skipLogin: true, waitUp: false });
    await waitFor(
      'the refusal',
      async () => /account is locked/.test((await alice.status()).groups[0]?.error ?? ''),
      20_000,
      250,
    );
    t.match((await alice.status()).groups[0], {
      session: 'down',
      error: /^login to the gateway refused: alice: the account is locked by an administrator; ask IT/,
    });
  });
});
