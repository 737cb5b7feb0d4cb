// The Active Directory path against a real Samba AD DC (own network namespace, LDAPS with a
// per-run CA): the GSRA LDF schema extension, the inheritable ACEs, nested groups, every bind
// form, the client's typed errors, and gsra-admin with --flavor ad.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Attribute, Change, Client } from 'ldapts';
import { startSambaAd, type SambaFixture } from '../src/fixture/samba.ts';
import { main } from '../src/cli/main.ts';
import {
  DirectoryClient,
  InvalidCredentialsError,
  TlsVerificationError,
  NotInAnyGroupError,
  NoUserSecretError,
  type DirectoryClientOptions,
} from '../src/index.ts';

let fx: SambaFixture;
const open: DirectoryClient[] = [];

t.before(async () => {
  fx = await startSambaAd();
  t.comment(`samba fixture: ${JSON.stringify(fx.timings)}`);
});
t.teardown(async () => {
  await Promise.all(open.map((c) => c.close()));
  await fx?.stop();
});

function client(over: Partial<DirectoryClientOptions> = {}): DirectoryClient {
  const c = new DirectoryClient({
    url: fx.url,
    caPem: fx.caPem,
    baseDn: fx.baseDn,
    groupsDn: fx.groupsDn,
    flavor: 'ad',
    connectTimeoutMs: 3000,
    timeoutMs: 10000,
    ...over,
  });
  open.push(c);
  return c;
}

async function admin(args: string[], who?: { upn: string; password: string }) {
  let stdout = '';
  let stderr = '';
  const code = await main([...args, '--json'], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: {
      GSRA_LDAP_URL: fx.url,
      GSRA_LDAP_CA_FILE: fx.caFile,
      GSRA_LDAP_BASE_DN: fx.baseDn,
      GSRA_LDAP_GROUPS_DN: fx.groupsDn,
      GSRA_LDAP_FLAVOR: 'ad',
      GSRA_LDAP_BIND_DN: who?.upn ?? fx.adminUpn,
      GSRA_LDAP_PASSWORD: who?.password ?? fx.adminPassword,
    },
  });
  return { code, json: JSON.parse(stdout || '{}') as Record<string, unknown>, stderr };
}

t.test('bind by userPrincipalName, DOMAIN\\user and DN all resolve the same DN', async (t) => {
  const a = fx.users.alice;
  t.equal((await client().bindUser(a.upn, a.password)).dn, a.dn);
  t.equal((await client().bindUser(a.nt, a.password)).dn, a.dn);
  t.equal((await client().bindUser(a.dn, a.password)).dn, a.dn);
  t.equal(
    (await client({ upnSuffix: 'corp.example' }).bindUser('alice', a.password)).dn,
    a.dn,
    'bare id + upnSuffix',
  );
});

t.test('StartTLS on port 389 works', async (t) => {
  const c = client({ url: `ldap://${fx.host}`, startTls: true });
  t.equal((await c.bindUser(fx.users.bob.upn, fx.users.bob.password)).dn, fx.users.bob.dn);
});

t.test('a wrong password gives InvalidCredentialsError with the AD reason', async (t) => {
  const err = await client()
    .bindUser(fx.users.alice.upn, 'wrong-Pw-1')
    .catch((e: unknown) => e);
  t.type(err, InvalidCredentialsError);
  t.equal((err as InvalidCredentialsError).reason, 'bad-password');
  t.equal(
    (err as Error).message,
    `LDAP server ${fx.url} refused the login of ${fx.users.alice.upn}: wrong user name or password`,
  );
});

t.test('a server certificate from another CA gives TlsVerificationError', async (t) => {
  const { readFileSync } = await import('node:fs');
  const systemCas = readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
  await t.rejects(
    client({ caPem: systemCas }).bindUser(fx.users.alice.upn, fx.users.alice.password),
    TlsVerificationError,
  );
});

t.test(
  'alice reads her group and its key (PRINCIPAL_SELF ACE), not the dev key (confidential)',
  async (t) => {
    const c = client();
    const me = await c.bindUser(fx.users.alice.upn, fx.users.alice.password);
    const groups = await c.groupsOfUser(me.dn);
    t.same(
      groups.map((g) => g.name),
      ['sales'],
    );
    t.ok(groups[0]!.keys[0]!.key.equals(fx.groups.sales.key));
    t.same(groups[0]!.hosts, fx.groups.sales.hosts);
    const dev = (await c.allGroups()).find((g) => g.name === 'dev');
    t.same(dev?.keys, [], 'dev key hidden from alice');
    t.ok((await c.userSecret(me.dn)).equals(fx.users.alice.secret), 'own secret readable');
    await t.rejects(c.userSecret(fx.users.bob.dn), NoUserSecretError, "bob's secret hidden");
  },
);

t.test('nested groups count: dave (in sales-team, in sales) is in sales and reads its key', async (t) => {
  const c = client();
  const me = await c.bindUser(fx.users.dave.nt, fx.users.dave.password);
  const groups = await c.groupsOfUser(me.dn);
  t.same(
    groups.map((g) => g.name),
    ['sales'],
  );
  t.ok(groups[0]!.keys[0]?.key.equals(fx.groups.sales.key), 'key readable through the nested group');
});

t.test('carol (no group) gets NotInAnyGroupError', async (t) => {
  const c = client();
  const me = await c.bindUser(fx.users.carol.upn, fx.users.carol.password);
  await t.rejects(c.groupsOfUser(me.dn), NotInAnyGroupError);
});

t.test('the gateway reads every key, secret and transitive member', async (t) => {
  const c = client();
  await c.bindService(fx.gatewayUpn, fx.gatewayPassword);
  t.equal(c.bindDn, fx.gatewayDn);
  const groups = await c.allGroups();
  t.same(
    groups.map((g) => [g.name, g.keys.length, g.members]),
    [
      ['dev', 1, [fx.users.bob.dn]],
      ['sales', 1, [fx.users.alice.dn, fx.users.dave.dn, fx.users.erin.dn].sort()],
    ],
  );
  t.ok(groups[1]!.keys[0]!.key.equals(fx.groups.sales.key));
  t.ok((await c.userSecret(fx.users.bob.dn)).equals(fx.users.bob.secret));
});

t.test('gsra-admin on AD: create-group, add-user, add-host; the new member reads the new key', async (t) => {
  const cg = await admin(['create-group', 'ops']);
  t.equal(cg.code, 0, JSON.stringify(cg.json));
  t.same(cg.json, { group: 'ops', dn: `CN=ops,${fx.groupsDn}`, keyVersion: 1 });
  t.equal((await admin(['add-user', 'ops', 'carol'])).code, 0);
  t.same((await admin(['add-host', 'ops', 'intra3.corp.example', '10.0.0.13'])).json, {
    group: 'ops',
    host: { name: 'intra3.corp.example', address: '10.0.0.13' },
    added: true,
  });
  const c = client();
  const me = await c.bindUser(fx.users.carol.upn, fx.users.carol.password);
  const [ops] = await c.groupsOfUser(me.dn);
  t.equal(ops?.name, 'ops');
  t.equal(ops?.keys.length, 1, 'the inherited ACE lets the new member read the new key');
  t.same(ops?.hosts, [{ name: 'intra3.corp.example', address: '10.0.0.13' }]);
  const bob = client();
  await bob.bindUser(fx.users.bob.upn, fx.users.bob.password);
  t.same((await bob.allGroups()).find((g) => g.name === 'ops')?.keys, [], 'a non-member cannot');
});

t.test('gsra-admin on AD: who-can-reach, what-can (nested membership shown)', async (t) => {
  const w = await admin(['who-can-reach', '10.0.0.11']);
  t.same(
    (w.json.groups as { members: { uid: string }[] }[])[0]!.members.map((m) => m.uid).sort(),
    ['alice', 'dave', 'ewong'],
    'members by sAMAccountName, the canonical id',
  );
  const wc = await admin(['what-can', 'CORP\\dave']);
  t.same(
    (wc.json.groups as { name: string }[]).map((g) => g.name),
    ['sales'],
  );
});

t.test('gsra-admin on AD: rotate-key keeps the previous key for the grace period', async (t) => {
  const r = await admin(['rotate-key', 'sales', '--grace', '10m']);
  t.equal(r.code, 0, JSON.stringify(r.json));
  t.equal(r.json.version, 2);
  const c = client();
  const me = await c.bindUser(fx.users.alice.upn, fx.users.alice.password);
  const [sales] = await c.groupsOfUser(me.dn);
  t.same(
    sales!.keys.map((k) => k.version),
    [2, 1],
  );
  t.ok(sales!.keys[1]!.key.equals(fx.groups.sales.key), 'previous = the old key, readable by the member');
  const bob = client();
  await bob.bindUser(fx.users.bob.upn, fx.users.bob.password);
  t.same(
    (await bob.allGroups()).find((g) => g.name === 'sales')?.keys,
    [],
    'neither key readable by a non-member',
  );
});

t.test('gsra-admin on AD: set-secret, remove-user, remove-host, delete-group', async (t) => {
  t.equal((await admin(['set-secret', 'carol@corp.example'])).code, 0);
  const gw = client();
  await gw.bindService(fx.gatewayUpn, fx.gatewayPassword);
  const s = await gw.userSecret(fx.users.carol.dn);
  t.equal(s.length, 32);
  t.notOk(s.equals(fx.users.carol.secret));
  t.equal((await admin(['remove-host', 'ops', 'intra3.corp.example'])).code, 0);
  t.equal((await admin(['remove-user', 'ops', 'carol'])).code, 0);
  const c = client();
  const me = await c.bindUser(fx.users.carol.upn, fx.users.carol.password);
  await t.rejects(c.groupsOfUser(me.dn), NotInAnyGroupError);
  t.same((await admin(['delete-group', 'ops'])).json, { group: 'ops', deleted: true });
  t.equal((await admin(['delete-group', 'ops'])).code, 1);
});

t.test('gsra-admin on AD as a delegated gsra-admins member (not a Domain Admin)', async (t) => {
  const it = { upn: fx.itadminUpn, password: fx.itadminPassword };
  const steps: [string[], number][] = [
    [['create-group', 'finance'], 0],
    [['add-user', 'finance', 'bob'], 0],
    [['add-host', 'finance', 'intra4.corp.example', '10.0.0.14'], 0],
    [['rotate-key', 'finance', '--grace', '5m'], 0],
    [['set-secret', 'bob'], 0],
  ];
  for (const [args, code] of steps) {
    const r = await admin(args, it);
    t.equal(r.code, code, `${args.join(' ')}: ${JSON.stringify(r.json)}`);
  }
  const bob = client();
  const me = await bob.bindUser(fx.users.bob.upn, fx.users.bob.password);
  const fin = (await bob.groupsOfUser(me.dn)).find((g) => g.name === 'finance');
  t.same(
    fin?.keys.map((k) => k.version),
    [2, 1],
    'bob reads both finance keys',
  );
  t.notOk((await bob.userSecret(me.dn)).equals(fx.users.bob.secret), 'new secret set by the delegated admin');
  t.equal((await admin(['remove-user', 'finance', 'bob'], it)).code, 0);
  t.equal((await admin(['delete-group', 'finance'], it)).code, 0);
  const denied = await admin(['create-group', 'evil'], {
    upn: fx.users.carol.upn,
    password: fx.users.carol.password,
  });
  t.equal(denied.code, 1);
  t.equal((denied.json.error as { code: string }).code, 'access-denied', JSON.stringify(denied.json));
});

t.test(
  'fallback without a schema extension (docs/ldap.md): SCP with a protected DACL, ipHost on the group',
  async (t) => {
    // Built with stock classes only, as the documented fallback describes; read back as each account.
    const { Client, Change, Attribute } = await import('ldapts');
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { sidToString } = await import('../src/fixture/samba.ts');
    const run = promisify(execFile);
    const adm = new Client({
      url: fx.url,
      tlsOptions: { ca: [fx.caPem] },
      connectTimeout: 3000,
      timeout: 10000,
    });
    await adm.bind(fx.adminUpn, fx.adminPassword);
    const sidOf = async (dn: string) => {
      const r = await adm.search(dn, {
        scope: 'base',
        attributes: ['objectSid'],
        explicitBufferAttributes: ['objectSid'],
      });
      return sidToString(r.searchEntries[0]?.objectSid as Buffer);
    };
    const container = `CN=GSRA,CN=System,${fx.baseDn}`;
    const scp = `CN=sales,${container}`;
    const salesSid = await sidOf(fx.groups.sales.dn);
    const gwSid = await sidOf(`CN=gsra-gateways,CN=Users,${fx.baseDn}`);
    await adm.add(container, { objectClass: ['top', 'container'], cn: 'GSRA' });
    const key = Buffer.alloc(32, 9).toString('base64');
    await adm.add(scp, {
      objectClass: ['top', 'serviceConnectionPoint'],
      cn: 'sales',
      keywords: [`groupSid=${salesSid}`],
      serviceBindingInformation: [`key;v=1;${key}`],
    });
    // hosts on the group itself, name and address kept together in one ipHostNumber value
    await adm.modify(fx.groups.dev.dn, [
      new Change({
        operation: 'add',
        modification: new Attribute({ type: 'objectClass', values: ['ipHost'] }),
      }),
    ]);
    await adm.modify(fx.groups.dev.dn, [
      new Change({
        operation: 'add',
        modification: new Attribute({ type: 'ipHostNumber', values: ['intra2.corp.example 10.0.0.12'] }),
      }),
    ]);
    await adm.unbind();
    // The protected DACL (P = no inheritance): the group's SID and the gateways read, admins manage.
    const tmp = mkdtempSync(join(tmpdir(), 'gsra-scp-'));
    writeFileSync(
      join(tmp, 'sd.ldif'),
      `dn: ${scp}\nchangetype: modify\nreplace: nTSecurityDescriptor\nnTSecurityDescriptor: O:DAG:DAD:P(A;;RPLCLORC;;;${salesSid})(A;;RPLCLORC;;;${gwSid})(A;;GA;;;DA)(A;;GA;;;EA)(A;;GA;;;SY)\n`,
    );
    await run('ldbmodify', ['-H', fx.samLdb, join(tmp, 'sd.ldif')]);
    rmSync(tmp, { recursive: true, force: true });

    const read = async (upn: string, password: string) => {
      const c = new Client({
        url: fx.url,
        tlsOptions: { ca: [fx.caPem] },
        connectTimeout: 3000,
        timeout: 10000,
      });
      await c.bind(upn, password);
      const r = await c.search(container, {
        scope: 'one',
        filter: '(objectClass=serviceConnectionPoint)',
        attributes: ['serviceBindingInformation'],
      });
      const h = await c.search(fx.groups.dev.dn, { scope: 'base', attributes: ['ipHostNumber'] });
      await c.unbind();
      return {
        scp: r.searchEntries.map((e) => e.serviceBindingInformation),
        hosts: h.searchEntries[0]?.ipHostNumber,
      };
    };
    const alice = await read(fx.users.alice.upn, fx.users.alice.password);
    t.same(alice.scp, [`key;v=1;${key}`], 'a member reads the key object');
    t.equal(alice.hosts, 'intra2.corp.example 10.0.0.12', 'hosts on the group are readable');
    t.same(
      (await read(fx.users.dave.upn, fx.users.dave.password)).scp,
      [`key;v=1;${key}`],
      'a nested member too',
    );
    t.same((await read(fx.gatewayUpn, fx.gatewayPassword)).scp, [`key;v=1;${key}`], 'the gateway too');
    t.same(
      (await read(fx.users.bob.upn, fx.users.bob.password)).scp,
      [],
      'a non-member does not even see it',
    );
  },
);

t.test(
  'a user whose UPN is not sAMAccountName@domain logs in with every form; the id kept is ewong',
  async (t) => {
    const e = fx.users.erin;
    t.equal(e.sam, 'ewong');
    t.equal(e.upn, 'erin.wong@corp.example');
    for (const form of [
      e.upn,
      'ewong@corp.example',
      'CORP\\ewong',
      'corp.example\\ewong',
      'CORP.EXAMPLE\\EWong',
    ]) {
      const me = await client().bindUser(form, e.password);
      t.match(me, { dn: e.dn, uid: 'ewong', upn: e.upn }, form);
    }
    t.match(
      await client({ upnSuffix: 'corp.example' }).bindUser('erin.wong', e.password),
      { dn: e.dn, uid: 'ewong' },
      'bare id + upnSuffix',
    );
    await t.rejects(client().bindUser('corp.example\\ewong', 'wrong-Pw-1'), {
      code: 'invalid-credentials',
      reason: 'bad-password',
    });
  },
);

const sh = promisify(execFile);

t.test('gsraUsers: ids, secret and account state; disable, lockout and expiry are seen', async (t) => {
  const gw = client();
  await gw.bindService(fx.gatewayUpn, fx.gatewayPassword);
  const erin = async () => (await gw.gsraUsers()).find((u) => u.dn === fx.users.erin.dn);
  const all = await gw.gsraUsers();
  t.same(all.map((u) => u.uid).sort(), ['alice', 'bob', 'carol', 'dave', 'ewong']);
  t.match(await erin(), { uid: 'ewong', upn: 'erin.wong@corp.example', state: { usable: true } });
  t.ok((await erin())!.secret!.equals(fx.users.erin.secret), 'the gateway reads the secret');

  await sh('samba-tool', ['user', 'disable', 'ewong', '-H', fx.samLdb]);
  t.match((await erin())!.state, { usable: false, problem: 'disabled' }, 'samba-tool user disable');
  await sh('samba-tool', ['user', 'enable', 'ewong', '-H', fx.samLdb]);
  t.match((await erin())!.state, { usable: true });

  const adm = new Client({
    url: fx.url,
    tlsOptions: { ca: [fx.caPem] },
    connectTimeout: 3000,
    timeout: 10000,
  });
  t.teardown(() => adm.unbind());
  await adm.bind(fx.adminUpn, fx.adminPassword);
  const set = (type: string, value: string) =>
    adm.modify(fx.users.erin.dn, [
      new Change({ operation: 'replace', modification: new Attribute({ type, values: [value] }) }),
    ]);
  const fileTime = (ms: number) => String((BigInt(ms) + 11_644_473_600_000n) * 10_000n);
  await set('lockoutTime', fileTime(Date.now()));
  t.match((await erin())!.state, { usable: false, problem: 'locked' }, 'locked out');
  await set('lockoutTime', '0');
  await set('accountExpires', fileTime(Date.now() - 60_000));
  t.match((await erin())!.state, { usable: false, problem: 'expired' }, 'expired');
  await set('accountExpires', '9223372036854775807');
  t.match((await erin())!.state, { usable: true });
});

t.test('gsra-admin without --flavor ad on AD: the error says to set the flavor', async (t) => {
  let stderr = '';
  const code = await main(['what-can', 'alice'], {
    stdout: () => {},
    stderr: (s) => (stderr += s),
    env: {
      GSRA_LDAP_URL: fx.url,
      GSRA_LDAP_CA_FILE: fx.caFile,
      GSRA_LDAP_BASE_DN: fx.baseDn,
      GSRA_LDAP_GROUPS_DN: fx.groupsDn,
      GSRA_LDAP_BIND_DN: fx.adminUpn,
      GSRA_LDAP_PASSWORD: fx.adminPassword,
    },
  });
  t.equal(code, 1);
  t.match(stderr, /no user "alice" found/);
  t.match(
    stderr,
    /the server is Active Directory but flavor "openldap" is configured: set flavor "ad" \(gsra-admin --flavor ad/,
  );
});
