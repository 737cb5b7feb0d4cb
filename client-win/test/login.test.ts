// gsra-agent login against a real slapd over TLS.
import t from 'tap';
import { mkdtempSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd } from '../../ldap/src/fixture/index.ts';
import { checkAgentConfig } from '../src/config.ts';
import { login } from '../src/login.ts';
import { loadCredentials, CredentialsError, credentialsPath } from '../src/credentials.ts';

t.test('agent login', async (t) => {
  const dir = await startSlapd();
  t.teardown(() => dir.stop());
  const state = mkdtempSync(join(tmpdir(), 'gsra-agent-'));
  const config = checkAgentConfig({
    gateway: { address: '127.0.0.1' },
    zones: ['corp.example'],
    ldap: { url: dir.ldapsUrl, caFile: dir.caFile, baseDn: dir.baseDn, connectTimeoutMs: 1000 },
    stateDir: join(state, 'agent'),
  });

  await t.test('alice logs in: her group, its key and her secret are stored, mode 0600', async (t) => {
    const c = await login(config, 'alice', dir.users.alice.password);
    t.same(
      c.groups.map((g) => g.name),
      ['sales'],
    );
    t.ok(c.groups[0]!.keys[0]!.key.equals(dir.groups.sales.key));
    t.same(c.groups[0]!.hosts, [{ name: 'intra1.corp.example', address: '10.0.0.11' }]);
    t.ok(c.secret.equals(dir.users.alice.secret));
    t.equal(statSync(credentialsPath(config.stateDir)).mode & 0o777, 0o600);
    t.equal(statSync(config.stateDir).mode & 0o777, 0o700);
    const back = loadCredentials(config.stateDir);
    t.ok(back.secret.equals(c.secret));
    t.ok(back.groups[0]!.keys[0]!.key.equals(c.groups[0]!.keys[0]!.key));
  });

  await t.test(
    'whatever case was typed, the stored id is the directory’s own (sent to the gateway)',
    async (t) => {
      const c = await login(config, 'ALICE', dir.users.alice.password);
      t.equal(c.user, 'alice');
      t.equal(c.typed, 'ALICE');
      t.equal(loadCredentials(config.stateDir).user, 'alice');
    },
  );

  await t.test('a mail address or DOMAIN\\name on OpenLDAP: the error says which form to use', async (t) => {
    await t.rejects(login(config, 'alice@corp.example', dir.users.alice.password), {
      code: 'invalid-credentials',
      message: /on OpenLDAP log in with the uid \(e\.g\. alice\), not the mail address/,
    });
    await t.rejects(login(config, 'CORP\\alice', dir.users.alice.password), {
      message: /is an Active Directory form; on OpenLDAP log in with the uid \(e\.g\. alice\)/,
    });
  });

  await t.test('a wrong password says so', async (t) => {
    await t.rejects(login(config, 'alice', 'wrong'), { code: 'invalid-credentials' });
  });

  await t.test('a user in no GSRA group is told to ask IT', async (t) => {
    await t.rejects(login(config, 'carol', dir.users.carol.password), { code: 'not-in-any-group' });
  });

  await t.test('a server certificate from another CA is refused (TLS verified)', async (t) => {
    const other = join(state, 'other-ca.pem');
    // a syntactically valid CA that did not sign the server's certificate
    const { createTestCa } = await import('../../ldap/src/fixture/tls.ts');
    const ca = await createTestCa(mkdtempSync(join(tmpdir(), 'gsra-ca-')), 'another CA');
    writeFileSync(other, ca.certPem);
    await t.rejects(
      login({ ...config, ldap: { ...config.ldap, caFile: other } }, 'alice', dir.users.alice.password),
      { code: 'tls' },
    );
  });

  await t.test('credentials readable by others are refused', async (t) => {
    chmodSync(credentialsPath(config.stateDir), 0o644);
    t.throws(() => loadCredentials(config.stateDir), CredentialsError);
  });
});
