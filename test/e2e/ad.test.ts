// A whole GSRA session against Active Directory (a Samba AD DC as the office directory, on the
// lab's directory host, LDAPS published at the office edge), as IT would run it: a user whose
// UPN is not sAMAccountName@domain logging in with a bare id + upnSuffix, a member through a
// nested group logging in as corp.example\dave, `samba-tool user disable` (new connections
// refused at the next refresh, the live download cut, the stored login refused), and a group
// removal. One DC for the whole file (provisioning is the slow part).
import t from 'tap';
import { join } from 'node:path';
import { makeRandomFile } from '../lab/services.ts';
import { run, waitFor } from '../lab/exec.ts';
import { startGsraLab, AGENT_BIN, IN1 } from './gsra-lab.ts';
import { BIG, BIG_SIZE, liveDownload, refusedAtFirstRefresh, untilFlowing } from './offboarding.ts';

t.test('a GSRA session against Active Directory (Samba AD DC)', async (t) => {
  const g = await startGsraLab({
    directory: 'ad',
    ens: 2,
    refreshSec: 2,
    control: { keepaliveSec: 1, mappingLifetimeSec: 3, sessionIdleSec: 10 },
  });
  t.teardown(() => g.stop());
  const lab = g.lab;
  const samba = g.directory.samba!;
  makeRandomFile(join(g.web1.root, BIG), BIG_SIZE);
  const curl = (host: 'en1' | 'en2') =>
    lab.exec(host, ['curl', '-sS', '-m', '10', `http://${IN1}/`], { allowFail: true });
  const gatewaySays = (user: string, message: string) =>
    g.logLines(g.gatewayLog).some((l) => l.message === message && l.user === user);

  let erin = await g.startAgent('en1', 'erin', { login: 'erin.wong' });

  await t.test('erin logs in as erin.wong (UPN ≠ sAMAccountName) and is ewong everywhere', async (t) => {
    t.equal((await erin.status()).user, 'ewong', 'the agent sends the directory’s own id');
    const r = await curl('en1');
    t.equal(r.stdout, '<h1>hello from in1</h1>\n');
    t.ok(gatewaySays('ewong', 'access allowed'), 'the gateway’s audit log names ewong');
    t.notOk(
      g.logLines(g.gatewayLog).some((l) => l.user === 'erin.wong'),
      'never the form she typed',
    );
  });

  const dave = await g.startAgent('en2', 'dave', { login: 'corp.example\\dave' });

  await t.test(
    'dave, in sales through the nested group sales-team, logs in as corp.example\\dave',
    async (t) => {
      t.equal((await dave.status()).user, 'dave');
      t.equal((await curl('en2')).code, 0, 'reaches intra1');
    },
  );

  await t.test(
    'samba-tool user disable: new connections refused at the next refresh, the live download cut',
    async (t) => {
      const live = liveDownload(g, 'en1');
      await untilFlowing(erin);
      await refusedAtFirstRefresh(t, g, 'ewong', 'account-disabled', () =>
        run(['samba-tool', 'user', 'disable', 'ewong', '-H', samba.samLdb]),
      );
      const cut = await live;
      t.not(cut.code, 0, `the live download was cut (${cut.stderr.trim()})`);
      t.ok(cut.bytes < BIG_SIZE, `${cut.bytes} of ${BIG_SIZE} bytes arrived`);
      t.not((await curl('en1')).code, 0, 'a new connection is refused');
      t.match(await erin.statusText(), /ewong: the account is disabled in Active Directory; ask IT/);
      t.equal((await curl('en2')).code, 0, 'dave is not affected');
    },
  );

  await t.test('erin’s agent restarted with its stored login is refused; a new login says why', async (t) => {
    await erin.proc.stop();
    erin = await g.startAgent('en1', 'erin', { skipLogin: true, waitUp: false });
    await waitFor(
      'the refusal',
      async () => /disabled in Active Directory/.test((await erin.status()).groups[0]?.error ?? ''),
      20_000,
      250,
    );
    t.match((await erin.status()).groups[0], {
      session: 'down',
      error: /^login to the gateway refused: ewong: the account is disabled in Active Directory; ask IT/,
    });
    const login = await lab.exec(
      'en1',
      ['node', AGENT_BIN, 'login', '--config', erin.config, '--user', 'erin.wong'],
      {
        env: { ...process.env, GSRA_PASSWORD: g.directory.passwords.erin! },
        allowFail: true,
        timeoutMs: 20_000,
      },
    );
    t.equal(login.code, 1);
    t.match(login.stderr, /refused the login of erin\.wong: the account is disabled/);
  });

  await t.test(
    'group removal: dave taken out of the nested group is refused at the next refresh',
    async (t) => {
      await refusedAtFirstRefresh(t, g, 'dave', 'revoked-user', () =>
        run(['samba-tool', 'group', 'removemembers', 'sales-team', 'dave', '-H', samba.samLdb]),
      );
      const r = await curl('en2');
      t.not(r.code, 0, 'a new connection is refused');
      t.match(await dave.statusText(), /dave is in no GSRA group; ask IT/);
    },
  );
});
