// Policy decisions against a real slapd over TLS with the demo directory (ppolicy overlay on):
// decisions, user-id canonicalisation, offboarding (a locked account loses access at the next
// refresh), fail closed when the directory is gone, and a flood of random ids that costs the
// directory nothing.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createLogger } from '@gsra/common';
import { DirectoryClient } from '@gsra/ldap';
import { startSlapd, type SlapdFixture } from '../../ldap/src/fixture/index.ts';
import { DirectoryPolicy } from '../src/policy.ts';
import { run } from '../../test/lab/exec.ts';

/** The real client, counting the LDAP searches it makes (and letting a test move the clock per search). */
class CountingClient extends DirectoryClient {
  searches = 0;
  onSearch: () => void = () => {};
  protected override searchAll(...args: Parameters<DirectoryClient['searchAll']>) {
    this.searches++;
    this.onSearch();
    return super.searchAll(...args);
  }
}

const logStream = new PassThrough();
const logged: Record<string, unknown>[] = [];
logStream.on('data', (b: Buffer) => {
  for (const l of b.toString().split('\n')) if (l.startsWith('{')) logged.push(JSON.parse(l));
});
const logger = createLogger('gateway', { stream: logStream });

async function ldapmodify(dir: SlapdFixture, ldif: string) {
  await run(['ldapmodify', '-H', dir.ldapsUrl, '-x', '-D', dir.rootDn, '-w', dir.rootPassword], {
    env: { ...process.env, LDAPTLS_CACERT: dir.caFile },
    input: ldif,
  });
}

async function setup(t: Test, opts: { liveFlows?: 'cut' | 'keep'; unknownMax?: number } = {}) {
  const dir = await startSlapd();
  t.teardown(() => dir.stop());
  const client = new CountingClient({
    url: dir.ldapsUrl,
    caPem: dir.caPem,
    baseDn: dir.baseDn,
    connectTimeoutMs: 2000,
    timeoutMs: 5000,
  });
  t.teardown(() => client.close());
  const clock = { now: 1_000_000 };
  const policy = new DirectoryPolicy({
    client,
    bindDn: dir.gatewayDn,
    password: dir.gatewayPassword,
    refreshMs: 30_000,
    logger,
    now: () => clock.now,
    ...(opts.liveFlows ? { liveFlows: opts.liveFlows } : {}),
    unknownIds: { max: opts.unknownMax ?? 4096, ttlMs: 600_000 },
  });
  return { dir, client, clock, policy };
}

t.test('policy from the demo directory', async (t) => {
  const { dir, clock, policy } = await setup(t);
  const first = await policy.refresh();
  t.match(first, { groups: 2, users: 2, hosts: 2, accounts: 3, disabled: 0, withoutSecret: 0 });
  const alice = dir.users.alice;
  const bob = dir.users.bob;

  await t.test('same group -> allow, with the host address from LDAP', async (t) => {
    const d = policy.decide(alice.dn, 'sales', 'intra1.corp.example');
    t.match(d, { allow: true, group: { name: 'sales' }, host: { address: '10.0.0.11' } });
    t.same(policy.mayReach('alice', 'sales', 'intra1.corp.example'), { allow: true, pin: '10.0.0.11' });
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

  await t.test('a GSRA user in no group -> revoked-user, said after the proof', async (t) => {
    t.match(policy.decide(dir.users.carol.dn, 'sales', 'intra1.corp.example'), {
      allow: false,
      reason: 'revoked-user',
    });
    const carol = policy.lookupUser('carol');
    t.match(carol, {
      id: 'carol',
      refusal: { reason: 'revoked-user', text: /carol is in no GSRA group; ask IT/ },
    });
    t.ok(
      'secret' in carol && carol.secret.equals(dir.users.carol.secret),
      'her real secret: she can prove it',
    );
  });

  await t.test(
    'an unknown id gets a decoy: a secret nobody knows, so its proof fails like a wrong one',
    async (t) => {
      const m = policy.lookupUser('mallory');
      t.match(m, { userDn: '', refusal: { reason: 'unknown-user' }, groups: [] });
      const again = policy.lookupUser('mallory');
      t.ok('secret' in m && 'secret' in again && m.secret.equals(again.secret), 'the same decoy each time');
      t.notOk('secret' in m && m.secret.equals(Buffer.alloc(32)), 'not a guessable constant');
    },
  );

  await t.test('lookupUser returns the secret the directory holds, and the groups', async (t) => {
    const u = policy.lookupUser('bob');
    t.ok(!('refused' in u));
    if ('refused' in u) return;
    t.equal(u.userDn, bob.dn);
    t.equal(u.id, 'bob');
    t.notOk(u.refusal);
    t.ok(u.secret.equals(bob.secret));
    t.same(
      u.groups.map((g) => g.name),
      ['dev'],
    );
    t.ok(u.groups[0]!.keys[0]!.key.equals(dir.groups.dev.key), 'the gateway reads the group key');
  });

  await t.test('every form of an id resolves to the canonical uid', async (t) => {
    for (const form of [
      'alice',
      'ALICE',
      ' Alice ',
      'alice@corp.example',
      'Alice@Corp.Example',
      alice.dn,
      'UID=alice, OU=people, DC=corp, DC=example',
    ]) {
      t.match(policy.resolveUser(form), { found: true, user: { id: 'alice', dn: alice.dn } }, form);
    }
    t.match(policy.resolveUser('uid=alice,ou=other,dc=corp,dc=example'), {
      found: false,
      reason: 'unknown-user',
    });
  });

  await t.test('DNS view: known hosts only', async (t) => {
    t.ok(policy.knownHost('INTRA1.corp.example.'));
    t.notOk(policy.knownHost('intra9.corp.example'));
  });

  await t.test(
    'a user removed from every group loses access at the next refresh (revoked-user)',
    async (t) => {
      // groupOfNames needs at least one member: carol takes alice's place.
      await ldapmodify(
        dir,
        `dn: ${dir.groups.sales.dn}\nchangetype: modify\nadd: member\nmember: ${dir.users.carol.dn}\n-\ndelete: member\nmember: ${alice.dn}\n`,
      );
      t.match(policy.decide(alice.dn, 'sales', 'intra1.corp.example'), { allow: true }, 'until the refresh');
      const r = await policy.refresh();
      t.same(r.revoked, [alice.dn.toLowerCase()]);
      t.same(r.changed, [alice.dn.toLowerCase()], 'her flows are decided again');
      t.match(policy.decide(alice.dn, 'sales', 'intra1.corp.example'), {
        allow: false,
        reason: 'revoked-user',
      });
      t.match(policy.lookupUser('alice'), { refusal: { reason: 'revoked-user' }, groups: [] });
    },
  );

  await t.test(
    'directory down: the last snapshot serves until too old, then directory-unavailable',
    async (t) => {
      await dir.kill();
      t.teardown(() => dir.start());
      await t.rejects(policy.refresh(), 'refresh fails while slapd is down');
      clock.now += 60_000;
      t.match(
        policy.decide(bob.dn, 'dev', 'intra2.corp.example'),
        { allow: true },
        'stale but within 5 × refresh',
      );
      clock.now += 120_000;
      const d = policy.decide(bob.dn, 'dev', 'intra2.corp.example');
      t.match(d, { allow: false, reason: 'directory-unavailable' });
      const words = policy.lookupUser('bob');
      t.match(words, {
        refused: 'directory-unavailable',
        text: /not been able to read the office directory \(LDAP\) for 3 min; help desk: check the LDAP server/,
      });
      t.ok(Buffer.byteLength((words as { text: string }).text) <= 200, 'fits the protocol');
      t.match(policy.mayReach('bob', 'dev', 'intra2.corp.example'), {
        allow: false,
        reason: 'directory-unavailable',
      });
    },
  );
});

t.test('offboarding: an account locked with ppolicy loses access at the next refresh', async (t) => {
  const { dir, policy } = await setup(t);
  await policy.refresh();
  const bob = dir.users.bob;
  t.match(policy.decide(bob.dn, 'dev', 'intra2.corp.example'), { allow: true });
  await ldapmodify(
    dir,
    `dn: ${bob.dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n`,
  );
  const r = await policy.refresh();
  t.same(r.changed, [bob.dn.toLowerCase()], 'his flows are decided again');
  t.equal(r.disabled, 1);
  t.match(policy.decide(bob.dn, 'dev', 'intra2.corp.example'), {
    allow: false,
    reason: 'account-disabled',
    detail: 'bob: the account is locked by an administrator; ask IT',
  });
  t.match(policy.lookupUser('bob'), {
    refusal: { reason: 'account-disabled', text: /locked by an administrator/ },
  });
  t.match(policy.mayReach('bob', 'dev', 'intra2.corp.example'), { allow: false, reason: 'account-disabled' });
  t.notOk(policy.keepLiveFlow({ mapping: { d: 80 } }, 'account-disabled'), "default 'cut'");
  const again = await policy.refresh();
  t.same(again.changed, [], 'a refresh later: nothing new to cut');
  await ldapmodify(dir, `dn: ${bob.dn}\nchangetype: modify\ndelete: pwdAccountLockedTime\n`);
  await policy.refresh();
  t.match(policy.decide(bob.dn, 'dev', 'intra2.corp.example'), { allow: true }, 'unlocked: back in');
});

t.test("liveFlows 'keep': a disabled account's mapped flows run on, its unmapped ports do not", async (t) => {
  const { policy } = await setup(t, { liveFlows: 'keep' });
  t.ok(policy.keepLiveFlow({ mapping: { d: 80 } }, 'account-disabled'));
  t.notOk(policy.keepLiveFlow({}, 'account-disabled'), 'reservation without a flow');
  t.notOk(policy.keepLiveFlow({ mapping: { d: 80 } }, 'revoked-user'), 'group removal still cuts');
});

t.test(
  'a flood of 20 000 random ids: no LDAP search, bounded memory, same refresh, users still resolve',
  async (t) => {
    const { dir, client, clock, policy } = await setup(t, { unknownMax: 1000 });
    // Every search "takes" 10 s of the policy's clock: the snapshot's age must count from the
    // moment its data was read, not from before or after some per-user loop.
    client.onSearch = () => (clock.now += 10_000);
    const s0 = client.searches;
    const t0 = clock.now;
    const first = await policy.refresh();
    const perRefresh = client.searches - s0;
    t.equal(perRefresh, 2, 'a refresh is two paged searches on OpenLDAP: all groups, all GSRA users');
    t.equal(policy.age, clock.now - t0 - 0, 'age counts from the start of the reads');
    t.ok(policy.usable);

    const before = client.searches;
    const logBefore = logged.length;
    const ids = Array.from({ length: 20_000 }, () => randomBytes(6).toString('hex'));
    let unknown = 0;
    for (const id of ids) {
      if (!policy.resolveUser(id).found) unknown++;
      policy.lookupUser(id);
      policy.mayReach(id, 'sales', 'intra1.corp.example');
    }
    t.equal(unknown, 20_000);
    t.equal(client.searches, before, 'zero LDAP searches caused by the flood');
    t.ok(policy.unknownIds.size <= 1000, `unknown-id memory bounded: ${policy.unknownIds.size} <= 1000`);
    t.ok(policy.unknownLookups >= 20_000);
    const logLines = logged
      .slice(logBefore)
      .filter((l) => l.message === 'user id not in the directory').length;
    t.ok(logLines <= 10, `the log is not flooded: ${logLines} lines for 20 000 ids`);

    const s1 = client.searches;
    const second = await policy.refresh();
    t.equal(client.searches - s1, perRefresh, 'the next refresh costs exactly the same searches');
    t.equal(second.accounts, first.accounts);
    t.equal(second.durationMs, first.durationMs, 'and the same (clock) time');
    t.ok(policy.usable);
    t.match(
      policy.resolveUser('alice'),
      { found: true, user: { dn: dir.users.alice.dn } },
      'genuine users resolve',
    );
    t.match(policy.lookupUser('bob'), { userDn: dir.users.bob.dn });
    t.comment(`refresh: ${perRefresh} searches, ${second.accounts} accounts, ${second.groups} groups`);
  },
);
