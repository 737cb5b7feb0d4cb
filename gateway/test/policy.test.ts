// Policy decisions against a real slapd over TLS with the demo directory.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { createLogger } from '@gsra/common';
import { DirectoryClient } from '@gsra/ldap';
import { startSlapd } from '../../ldap/src/fixture/index.ts';
import { DirectoryPolicy } from '../src/policy.ts';
import { run } from '../../test/lab/exec.ts';

const logger = createLogger('gateway', { stream: new PassThrough() });

t.test('policy from the demo directory', async (t) => {
  const dir = await startSlapd();
  t.teardown(() => dir.stop());
  const client = new DirectoryClient({
    url: dir.ldapsUrl,
    caPem: dir.caPem,
    baseDn: dir.baseDn,
    connectTimeoutMs: 2000,
    timeoutMs: 5000,
  });
  t.teardown(() => client.close());
  let clock = 1_000_000;
  const policy = new DirectoryPolicy({
    client,
    bindDn: dir.gatewayDn,
    password: dir.gatewayPassword,
    refreshMs: 30_000,
    logger,
    now: () => clock,
  });
  const first = await policy.refresh();
  t.match(first, { groups: 2, users: 2, hosts: 2 });
  const alice = dir.users.alice;
  const bob = dir.users.bob;

  await t.test('same group -> allow, with the host address from LDAP', async (t) => {
    const d = policy.decide(alice.dn, 'sales', 'intra1.corp.example');
    t.match(d, { allow: true, group: { name: 'sales' }, host: { address: '10.0.0.11' } });
  });

  await t.test('other group -> not-in-group', async (t) => {
    t.match(policy.decide(alice.dn, 'sales', 'intra2.corp.example'), {
      allow: false,
      reason: 'not-in-group',
    });
    t.match(policy.decide(alice.dn, 'dev', 'intra2.corp.example'), { allow: false, reason: 'not-in-group' });
  });

  await t.test('unknown internal host -> unknown-in', async (t) => {
    t.match(policy.decide(alice.dn, 'sales', 'payroll.corp.example'), { allow: false, reason: 'unknown-in' });
  });

  await t.test('a user in no GSRA group -> unknown-user', async (t) => {
    t.match(policy.decide(dir.users.carol.dn, 'sales', 'intra1.corp.example'), {
      allow: false,
      reason: 'unknown-user',
    });
    t.equal(await policy.lookupUser('carol'), null);
    t.equal(await policy.lookupUser('mallory'), null, 'a name the directory does not know');
  });

  await t.test('lookupUser returns the secret the directory holds, and the groups', async (t) => {
    const u = await policy.lookupUser('bob');
    t.equal(u!.revoked, false);
    t.ok(u);
    t.equal(u!.dn, bob.dn);
    t.ok(u!.secret.equals(bob.secret));
    t.same(
      u!.groups.map((g) => g.name),
      ['dev'],
    );
    t.ok(u!.groups[0]!.keys[0]!.key.equals(dir.groups.dev.key), 'the gateway reads the group key');
  });

  await t.test('DNS view: known hosts only', async (t) => {
    t.ok(policy.knownHost('INTRA1.corp.example.'));
    t.notOk(policy.knownHost('intra9.corp.example'));
  });

  await t.test('a user removed from the group loses access at the next refresh (revoked-user)', async (t) => {
    await run(['ldapmodify', '-H', dir.ldapsUrl, '-x', '-D', dir.rootDn, '-w', dir.rootPassword], {
      env: { ...process.env, LDAPTLS_CACERT: dir.caFile },
      // groupOfNames needs at least one member: carol takes alice's place.
      input: `dn: ${dir.groups.sales.dn}\nchangetype: modify\nadd: member\nmember: ${dir.users.carol.dn}\n-\ndelete: member\nmember: ${alice.dn}\n`,
    });
    t.match(policy.decide(alice.dn, 'sales', 'intra1.corp.example'), { allow: true }, 'until the refresh');
    await policy.lookupUser('alice'); // alice is a known, cached user when the refresh comes
    const r = await policy.refresh();
    t.same(r.revoked, [alice.dn.toLowerCase()]);
    t.match(policy.cachedUser('alice'), { revoked: true }, 'the cache was re-read, not dropped');
    t.match(policy.decide(alice.dn, 'sales', 'intra1.corp.example'), {
      allow: false,
      reason: 'revoked-user',
    });
    t.match(await policy.lookupUser('alice'), { revoked: true, groups: [] });
  });

  await t.test('directory down: the last snapshot serves until too old, then fail closed', async (t) => {
    await dir.kill();
    t.teardown(() => dir.start());
    await t.rejects(policy.refresh(), 'refresh fails while slapd is down');
    clock += 60_000;
    t.match(
      policy.decide(bob.dn, 'dev', 'intra2.corp.example'),
      { allow: true },
      'stale but within 5 × refresh',
    );
    clock += 120_000;
    t.match(policy.decide(bob.dn, 'dev', 'intra2.corp.example'), { allow: false, reason: 'internal' });
    await t.rejects(policy.lookupUser('bob'), /directory unavailable/);
  });
});
