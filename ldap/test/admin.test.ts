// gsra-admin against a real slapd over TLS, bound as the demo IT admin (a gsra-admins member,
// so the ACLs are exercised, not the rootdn). Every command, --json, --help, errors, and key
// rotation with a grace period as the agent and the gateway see it.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startSlapd, type SlapdFixture } from '../src/fixture/index.ts';
import { main } from '../src/cli/main.ts';
import { DirectoryClient, DirectoryAdmin, NotInAnyGroupError } from '../src/index.ts';

const execFileP = promisify(execFile);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'gsra-admin.mjs');

let fx: SlapdFixture;
const tmp = mkdtempSync(join(tmpdir(), 'gsra-admin-test-'));

t.before(async () => {
  fx = await startSlapd();
});
t.teardown(async () => {
  await fx.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  return {
    GSRA_LDAP_URL: fx.ldapsUrl,
    GSRA_LDAP_CA_FILE: fx.caFile,
    GSRA_LDAP_BASE_DN: fx.baseDn,
    GSRA_LDAP_BIND_DN: fx.adminDn,
    GSRA_LDAP_PASSWORD: fx.adminPassword,
  };
}

async function run(args: string[], e: NodeJS.ProcessEnv = env()) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: e });
  return { code, stdout, stderr };
}

async function runJson(args: string[], e?: NodeJS.ProcessEnv) {
  const r = await run([...args, '--json'], e);
  return { ...r, json: JSON.parse(r.stdout) as Record<string, unknown> };
}

async function as(user: 'alice' | 'bob' | 'gateway') {
  const c = new DirectoryClient({
    url: fx.ldapsUrl,
    caPem: fx.caPem,
    baseDn: fx.baseDn,
    connectTimeoutMs: 2000,
    timeoutMs: 3000,
  });
  if (user === 'gateway') await c.bindService(fx.gatewayDn, fx.gatewayPassword);
  else await c.bindUser(user, fx.users[user].password);
  return c;
}

t.test('--help lists every command; <command> --help describes it', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, 0);
  for (const c of [
    'create-group',
    'delete-group',
    'add-user',
    'remove-user',
    'add-host',
    'remove-host',
    'rotate-key',
    'set-secret',
    'who-can-reach',
    'what-can',
    'list-groups',
  ]) {
    t.match(r.stdout, `  ${c} `, `${c} listed`);
    const h = await run([c, '--help'], {});
    t.equal(h.code, 0, `${c} --help exits 0 without any configuration`);
    t.match(h.stdout, `gsra-admin ${c}`);
  }
  t.match((await run(['rotate-key', '--help'])).stdout, '--grace');
});

t.test('the installed shim runs (node --import tsx)', async (t) => {
  const { stdout } = await execFileP(BIN, ['what-can', 'alice', '--json'], {
    env: { ...process.env, ...env() },
  });
  t.same(
    JSON.parse(stdout).groups.map((g: { name: string }) => g.name),
    ['sales'],
  );
});

t.test('an unknown command or wrong arguments exit 2 with a hint', async (t) => {
  const a = await run(['frobnicate']);
  t.equal(a.code, 2);
  t.equal(a.stderr, 'gsra-admin: unknown command "frobnicate"; run gsra-admin --help\n');
  const b = await runJson(['add-user', 'sales']);
  t.equal(b.code, 2);
  t.same(b.json, {
    error: {
      code: 'usage',
      message: 'add-user takes 2 argument(s): <group> <user>; run gsra-admin add-user --help',
    },
  });
});

t.test('missing settings and a missing password are reported, and there is no password flag', async (t) => {
  const a = await run(['list-groups'], {});
  t.equal(a.code, 2);
  t.match(a.stderr, 'missing connection settings: url (--url / GSRA_LDAP_URL)');
  const e = env();
  delete e.GSRA_LDAP_PASSWORD;
  t.match(
    (await run(['list-groups'], e)).stderr,
    'no password: set GSRA_LDAP_PASSWORD or give --password-file',
  );
  const c = await run(['list-groups', '--password', 'x']);
  t.equal(c.code, 2);
  t.match(c.stderr, "Unknown option '--password'");
});

t.test('settings from a config file and a password file work', async (t) => {
  const cfg = join(tmp, 'admin.json');
  const pw = join(tmp, 'pw');
  writeFileSync(pw, fx.adminPassword + '\n');
  writeFileSync(
    cfg,
    JSON.stringify({
      url: fx.ldapUrl,
      startTls: true,
      caFile: fx.caFile,
      baseDn: fx.baseDn,
      bindDn: fx.adminDn,
      passwordFile: pw,
    }),
  );
  const r = await runJson(['list-groups', '--config', cfg], {});
  t.equal(r.code, 0, r.stdout);
  t.same(
    (r.json.groups as { name: string }[]).map((g) => g.name),
    ['dev', 'sales'],
  );
  writeFileSync(cfg, JSON.stringify({ url: 'http://x', bogus: 1 }));
  const bad = await run(['list-groups', '--config', cfg], {});
  t.equal(bad.code, 2);
  t.match(bad.stderr, 'url: expected a string matching');
  t.match(bad.stderr, 'bogus: expected no such key');
});

t.test('a wrong admin password and a wrong CA give clear errors (exit 1)', async (t) => {
  const a = await runJson(['list-groups'], { ...env(), GSRA_LDAP_PASSWORD: 'wrong' });
  t.equal(a.code, 1);
  t.same(a.json, {
    error: {
      code: 'invalid-credentials',
      message: `LDAP server ${fx.ldapsUrl} refused the login of ${fx.adminDn}: wrong user name or password`,
    },
  });
  const b = await run(['list-groups'], { ...env(), GSRA_LDAP_CA_FILE: '/etc/ssl/certs/ca-certificates.crt' });
  t.equal(b.code, 1);
  t.match(b.stderr, `gsra-admin: TLS certificate of LDAP server ${fx.ldapsUrl} could not be verified`);
});

t.test('a user who is not an admin cannot change anything', async (t) => {
  const r = await runJson(['create-group', 'eve'], {
    ...env(),
    GSRA_LDAP_BIND_DN: fx.users.bob.dn,
    GSRA_LDAP_PASSWORD: fx.users.bob.password,
  });
  t.equal(r.code, 1);
  t.equal((r.json.error as { code: string }).code, 'access-denied');
});

t.test('list-groups shows the demo directory without keys', async (t) => {
  const r = await runJson(['list-groups']);
  t.equal(r.code, 0);
  t.same(r.json.groups, [
    {
      name: 'dev',
      dn: fx.groups.dev.dn,
      hosts: [{ name: 'intra2.corp.example', address: '10.0.0.12' }],
      members: [fx.users.bob.dn],
      keyVersion: 1,
      keyRotatedAt: (r.json.groups as { keyRotatedAt: string }[])[0]!.keyRotatedAt,
      previousKey: null,
    },
    {
      name: 'sales',
      dn: fx.groups.sales.dn,
      hosts: [{ name: 'intra1.corp.example', address: '10.0.0.11' }],
      members: [fx.users.alice.dn],
      keyVersion: 1,
      keyRotatedAt: (r.json.groups as { keyRotatedAt: string }[])[1]!.keyRotatedAt,
      previousKey: null,
    },
  ]);
  t.notMatch(r.stdout, fx.groups.sales.key.toString('base64'));
  const text = await run(['list-groups']);
  t.match(text.stdout, 'sales: key v1; hosts intra1.corp.example (10.0.0.11); members uid=alice');
});

t.test('create-group, add-user, add-host: the new member reads the new key', async (t) => {
  const c = await runJson(['create-group', 'ops', '--description', 'operations']);
  t.same(c.json, { group: 'ops', dn: `cn=ops,ou=groups,${fx.baseDn}`, keyVersion: 1 });
  t.equal((await run(['create-group', 'ops'])).code, 1, 'creating it twice fails');
  t.match((await run(['create-group', 'ops'])).stderr, 'GSRA group "ops" already exists');
  const u = await runJson(['add-user', 'ops', 'bob']);
  t.same(u.json, { group: 'ops', user: fx.users.bob.dn, added: true });
  t.match((await run(['add-user', 'ops', 'bob'])).stderr, 'already exists');
  const h = await runJson(['add-host', 'ops', 'Intra3.corp.example', '10.0.0.13']);
  t.same(h.json, { group: 'ops', host: { name: 'intra3.corp.example', address: '10.0.0.13' }, added: true });
  t.match(
    (await run(['add-host', 'ops', 'bad_name!', '10.0.0.13'])).stderr,
    '"bad_name!" is not a DNS host name',
  );
  t.match(
    (await run(['add-host', 'ops', 'x.corp.example', '10.0.0.300'])).stderr,
    'is not an IPv4 or IPv6 address',
  );
  const bob = await as('bob');
  const groups = await bob.groupsOfUser(fx.users.bob.dn);
  await bob.close();
  t.same(
    groups.map((g) => [g.name, g.keys.length, g.hosts]),
    [
      ['dev', 1, [{ name: 'intra2.corp.example', address: '10.0.0.12' }]],
      ['ops', 1, [{ name: 'intra3.corp.example', address: '10.0.0.13' }]],
    ],
  );
  const alice = await as('alice');
  const opsForAlice = (await alice.allGroups()).find((g) => g.name === 'ops');
  await alice.close();
  t.same(opsForAlice?.keys, [], 'a non-member cannot read the new key');
});

t.test('who-can-reach by name and by address; what-can', async (t) => {
  const a = await runJson(['who-can-reach', 'intra3.corp.example']);
  t.same(a.json, {
    host: 'intra3.corp.example',
    groups: [
      {
        group: 'ops',
        groupDn: `cn=ops,ou=groups,${fx.baseDn}`,
        hosts: [{ name: 'intra3.corp.example', address: '10.0.0.13' }],
        members: [{ dn: fx.users.bob.dn, uid: 'bob', upn: 'bob@corp.example', displayName: 'bob' }],
      },
    ],
  });
  const b = await run(['who-can-reach', '10.0.0.11']);
  t.equal(b.stdout, 'sales (intra1.corp.example (10.0.0.11)): alice\n');
  t.equal((await run(['who-can-reach', '10.9.9.9'])).stdout, 'no GSRA group lists 10.9.9.9\n');
  const w = await runJson(['what-can', 'bob']);
  t.same(
    (w.json.groups as { name: string }[]).map((g) => g.name),
    ['dev', 'ops'],
  );
  t.equal(
    (await run(['what-can', 'alice'])).stdout,
    `alice (${fx.users.alice.dn}):\n  sales: intra1.corp.example (10.0.0.11)\n`,
  );
  t.equal((await run(['what-can', 'carol'])).stdout, `carol (${fx.users.carol.dn}) is in no GSRA group\n`);
  t.match((await run(['what-can', 'nobody'])).stderr, 'no user "nobody" found');
});

t.test('remove-host and remove-user; the removed user loses the group and its key', async (t) => {
  const h = await runJson(['remove-host', 'ops', '10.0.0.13']);
  t.same(h.json, {
    group: 'ops',
    hosts: [{ name: 'intra3.corp.example', address: '10.0.0.13' }],
    removed: true,
  });
  t.match((await run(['remove-host', 'ops', '10.0.0.13'])).stderr, 'group ops has no host "10.0.0.13"');
  const u = await runJson(['remove-user', 'ops', 'bob']);
  t.same(u.json, { group: 'ops', user: fx.users.bob.dn, removed: true });
  t.match((await run(['remove-user', 'ops', 'bob'])).stderr, 'bob is not a direct member of ops');
  const bob = await as('bob');
  const all = await bob.allGroups();
  await bob.close();
  const ops = all.find((g) => g.name === 'ops');
  t.same(ops?.members, [], 'ops is empty');
  t.same(ops?.keys, [], 'bob no longer reads the ops key');
  t.equal((await run(['add-user', 'ops', 'bob'])).code, 0, 'an emptied group takes members again');
});

t.test('delete-group removes the group; deleting it twice is an error', async (t) => {
  t.same((await runJson(['delete-group', 'ops'])).json, { group: 'ops', deleted: true });
  const again = await runJson(['delete-group', 'ops']);
  t.equal(again.code, 1);
  t.same(again.json, {
    error: { code: 'no-such-group', message: `no GSRA group "ops" found on LDAP server ${fx.ldapsUrl}` },
  });
});

t.test('set-secret gives the user a new secret that the user and the gateway read', async (t) => {
  const r = await runJson(['set-secret', 'carol']);
  t.same(r.json, { user: fx.users.carol.dn, secretSet: true });
  const gw = await as('gateway');
  const s1 = await gw.userSecret(fx.users.carol.dn);
  t.equal(s1.length, 32);
  t.notOk(s1.equals(fx.users.carol.secret), 'changed');
  const file = join(tmp, 'secret.bin');
  const wanted = Buffer.alloc(24, 7);
  writeFileSync(file, wanted);
  t.equal((await run(['set-secret', 'carol', '--secret-file', file])).code, 0);
  t.ok((await gw.userSecret(fx.users.carol.dn)).equals(wanted));
  await gw.close();
  writeFileSync(file, Buffer.alloc(4));
  t.match((await run(['set-secret', 'carol', '--secret-file', file])).stderr, 'at least 16 bytes');
});

t.test('set-secret adds the gsraUser class to a user that lacks it', async (t) => {
  const admin = new DirectoryAdmin({ url: fx.ldapsUrl, caPem: fx.caPem, baseDn: fx.baseDn });
  await admin.bindService(fx.rootDn, fx.rootPassword);
  await admin['op']('add test user', (c) =>
    c.add(`uid=dave,${fx.peopleDn}`, {
      objectClass: 'inetOrgPerson',
      uid: 'dave',
      cn: 'dave',
      sn: 'dave',
      userPassword: 'dave-Pw-1',
    }),
  );
  await admin.close();
  t.equal((await run(['set-secret', 'dave'])).code, 0);
  const dave = new DirectoryClient({ url: fx.ldapsUrl, caPem: fx.caPem, baseDn: fx.baseDn });
  await dave.bindUser('dave', 'dave-Pw-1');
  t.equal((await dave.userSecret(`uid=dave,${fx.peopleDn}`)).length, 32);
  await t.rejects(dave.groupsOfUser(`uid=dave,${fx.peopleDn}`), NotInAnyGroupError);
  await dave.close();
});

t.test(
  'rotate-key: new version current, previous valid for the grace period for members and gateway',
  async (t) => {
    const before = Date.now();
    const r = await runJson(['rotate-key', 'sales', '--grace', '1h']);
    t.equal(r.code, 0);
    t.equal(r.json.version, 2);
    const prev = r.json.previous as { version: number; notAfter: string };
    t.equal(prev.version, 1);
    const notAfter = Date.parse(prev.notAfter);
    t.ok(Math.abs(notAfter - (before + 3600_000)) < 5000, 'notAfter = now + 1h');

    const alice = await as('alice');
    const [sales] = await alice.groupsOfUser(fx.users.alice.dn);
    t.same(
      sales!.keys.map((k) => k.version),
      [2, 1],
      'current first, then the previous one',
    );
    t.notOk(sales!.keys[0]!.key.equals(fx.groups.sales.key), 'a new key');
    t.ok(sales!.keys[1]!.key.equals(fx.groups.sales.key), 'the previous key is the old one');
    t.equal(Math.floor(sales!.keys[1]!.notAfter!.getTime() / 1000), Math.floor(notAfter / 1000));
    t.equal(sales!.keys[0]!.notAfter, undefined);
    await alice.close();

    const gw = await as('gateway');
    const gsales = (await gw.allGroups()).find((g) => g.name === 'sales')!;
    t.same(
      gsales.keys.map((k) => k.version),
      [2, 1],
    );
    t.ok(gsales.keys[0]!.key.equals(sales!.keys[0]!.key), 'gateway and member see the same key');
    await gw.close();

    const bob = await as('bob');
    const bsales = (await bob.allGroups()).find((g) => g.name === 'sales')!;
    t.same(bsales.keys, [], 'a non-member reads neither the new nor the previous key');
    await bob.close();

    t.match(
      (await run(['list-groups'])).stdout,
      `sales: key v2 (v1 until ${new Date(Math.floor(notAfter / 1000) * 1000).toISOString()})`,
    );
  },
);

t.test('rotate-key: after the grace period only the current key is returned', async (t) => {
  const started = Date.now();
  const r = await runJson(['rotate-key', 'dev', '--grace', '2s']);
  t.equal(r.json.version, 2);
  const notAfter = Date.parse((r.json.previous as { notAfter: string }).notAfter);
  t.ok(
    notAfter >= started + 2000 && notAfter <= Date.now() + 3000,
    'notAfter: now + 2 s, rounded up to the second',
  );
  const bob = await as('bob');
  t.same(
    (await bob.groupsOfUser(fx.users.bob.dn))[0]!.keys.map((k) => k.version),
    [2, 1],
    'inside the grace period',
  );
  await new Promise((res) => setTimeout(res, Math.max(0, notAfter - Date.now()) + 50));
  t.same(
    (await bob.groupsOfUser(fx.users.bob.dn))[0]!.keys.map((k) => k.version),
    [2],
    'grace period over',
  );
  await bob.close();
});

t.test('rotate-key twice: the previous key is always the one just replaced', async (t) => {
  const gw = await as('gateway');
  const v2 = (await gw.allGroups()).find((g) => g.name === 'sales')!.keys[0]!;
  t.equal((await runJson(['rotate-key', 'sales', '--grace', '90s'])).json.version, 3);
  const keys = (await gw.allGroups()).find((g) => g.name === 'sales')!.keys;
  t.same(
    keys.map((k) => k.version),
    [3, 2],
  );
  t.ok(keys[1]!.key.equals(v2.key));
  await gw.close();
  t.match((await run(['rotate-key', 'sales', '--grace', 'soon'])).stderr, 'invalid duration "soon"');
  t.match((await run(['rotate-key', 'nosuch'])).stderr, 'no GSRA group "nosuch"');
});

t.test('rotate-key on a group created without a key sets version 1 and no previous key', async (t) => {
  t.same((await runJson(['create-group', 'keyless', '--no-key'])).json, {
    group: 'keyless',
    dn: `cn=keyless,ou=groups,${fx.baseDn}`,
    keyVersion: null,
  });
  const r = await runJson(['rotate-key', 'keyless']);
  t.equal(r.json.version, 1);
  t.equal(r.json.previous, null);
});

t.test('concurrent rotations never both replace the same version', async (t) => {
  const mk = async () => {
    const a = new DirectoryAdmin({
      url: fx.ldapsUrl,
      caPem: fx.caPem,
      baseDn: fx.baseDn,
      groupsDn: fx.groupsDn,
    });
    await a.bindService(fx.adminDn, fx.adminPassword);
    return a;
  };
  const [a, b] = await Promise.all([mk(), mk()]);
  const before = (await a.requireGroup('dev')).keys[0]!.version;
  const results = await Promise.allSettled([a.rotateKey('dev', 60), b.rotateKey('dev', 60)]);
  const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ version: number }>[];
  const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  for (const f of failed) t.match(String(f.reason), 'was rotated by someone else at the same time');
  const after = (await a.requireGroup('dev')).keys[0]!.version;
  t.equal(after, before + ok.length, `${ok.length} rotation(s) landed, each on its own version`);
  t.equal(new Set(ok.map((r) => r.value.version)).size, ok.length, 'no version handed out twice');
  await Promise.all([a.close(), b.close()]);
});
