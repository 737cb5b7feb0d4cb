// DirectoryClient against a real slapd over TLS (the fixture): bind variants, typed errors,
// timeouts, reconnect, and what each account may read.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { startSlapd, createTestCa, type SlapdFixture } from '../src/fixture/index.ts';
import {
  DirectoryClient,
  InvalidCredentialsError,
  TlsVerificationError,
  DirectoryUnreachableError,
  DirectoryTimeoutError,
  NotInAnyGroupError,
  NoUserSecretError,
  NotBoundError,
  DirectoryError,
  type DirectoryClientOptions,
} from '../src/index.ts';

let fx: SlapdFixture;
const otherCaDir = mkdtempSync(join(tmpdir(), 'gsra-otherca-'));
let otherCaPem: string;
const open: DirectoryClient[] = [];

t.before(async () => {
  fx = await startSlapd();
  otherCaPem = (await createTestCa(otherCaDir, 'unrelated CA')).certPem;
});
t.teardown(async () => {
  await Promise.all(open.map((c) => c.close()));
  await fx.stop();
  rmSync(otherCaDir, { recursive: true, force: true });
});

function client(over: Partial<DirectoryClientOptions> = {}): DirectoryClient {
  const c = new DirectoryClient({
    url: fx.ldapsUrl,
    caPem: fx.caPem,
    baseDn: fx.baseDn,
    connectTimeoutMs: 2000,
    timeoutMs: 3000,
    ...over,
  });
  open.push(c);
  return c;
}

async function elapsed<T>(p: Promise<T>): Promise<[T | unknown, number]> {
  const t0 = Date.now();
  try {
    return [await p, Date.now() - t0];
  } catch (err) {
    return [err, Date.now() - t0];
  }
}

t.test('bindUser by uid over LDAPS returns the user DN', async (t) => {
  const u = await client().bindUser('alice', fx.users.alice.password);
  t.equal(u.dn, fx.users.alice.dn);
  t.equal(u.uid, 'alice');
});

t.test('bindUser by DN over StartTLS works', async (t) => {
  const c = client({ url: fx.ldapUrl, startTls: true });
  const u = await c.bindUser(fx.users.bob.dn, fx.users.bob.password);
  t.equal(u.dn, fx.users.bob.dn);
  t.equal(c.bindDn, fx.users.bob.dn);
});

t.test('bindService as the gateway over StartTLS works with caFile', async (t) => {
  const c = client({ url: fx.ldapUrl, startTls: true, caPem: undefined, caFile: fx.caFile });
  await c.bindService(fx.gatewayDn, fx.gatewayPassword);
  t.equal(c.bindDn, fx.gatewayDn);
});

t.test('a wrong password gives InvalidCredentialsError naming the server and the user', async (t) => {
  const err = await client()
    .bindUser('alice', 'not-her-password')
    .catch((e: unknown) => e);
  t.type(err, InvalidCredentialsError);
  t.equal(
    (err as Error).message,
    `LDAP server ${fx.ldapsUrl} refused the login of alice: wrong user name or password`,
  );
  t.notMatch((err as Error).message, 'not-her-password');
});

t.test('an unknown user gives InvalidCredentialsError', async (t) => {
  await t.rejects(client().bindUser('mallory', 'x'), InvalidCredentialsError);
});

t.test('an empty password is refused locally (no anonymous "unauthenticated bind")', async (t) => {
  await t.rejects(client().bindUser('alice', ''), InvalidCredentialsError);
});

t.test('a service bind with a wrong password gives InvalidCredentialsError', async (t) => {
  await t.rejects(client().bindService(fx.gatewayDn, 'wrong'), InvalidCredentialsError);
});

t.test('a server certificate from another CA gives TlsVerificationError (LDAPS)', async (t) => {
  const err = await client({ caPem: otherCaPem })
    .bindUser('alice', fx.users.alice.password)
    .catch((e: unknown) => e);
  t.type(err, TlsVerificationError);
  t.equal((err as TlsVerificationError).tlsCode, 'SELF_SIGNED_CERT_IN_CHAIN');
  t.match((err as Error).message, `TLS certificate of LDAP server ${fx.ldapsUrl} could not be verified`);
});

t.test('a server certificate from another CA gives TlsVerificationError (StartTLS)', async (t) => {
  await t.rejects(
    client({ url: fx.ldapUrl, startTls: true, caPem: otherCaPem }).bindUser('alice', fx.users.alice.password),
    TlsVerificationError,
  );
});

t.test('a URL whose host is not in the certificate gives TlsVerificationError', async (t) => {
  // "127.1" is not an IP literal for Node, so it is checked as a host name, but the resolver
  // maps it to 127.0.0.1: the right server with the right CA, under a name the certificate
  // does not list.
  for (const opts of [
    { url: `ldaps://127.1:${fx.ldapsPort}` },
    { url: `ldap://127.1:${fx.ldapPort}`, startTls: true },
  ]) {
    const err = await client(opts)
      .bindUser('alice', fx.users.alice.password)
      .catch((e: unknown) => e);
    t.type(err, TlsVerificationError, `${opts.url}: ${String(err)}`);
    t.equal((err as TlsVerificationError).tlsCode, 'ERR_TLS_CERT_ALTNAME_INVALID');
    t.match((err as Error).message, 'the certificate does not list the host name or address in the URL');
  }
});

t.test('an unresolvable host name gives DirectoryUnreachableError, not a TLS error', async (t) => {
  const err = await client({ url: `ldaps://ldap.invalid:${fx.ldapsPort}`, connectTimeoutMs: 1500 })
    .bindUser('alice', fx.users.alice.password)
    .catch((e: unknown) => e);
  t.type(err, DirectoryUnreachableError);
  t.equal(
    (err as Error).message,
    `LDAP server ldaps://ldap.invalid:${fx.ldapsPort} unreachable (host name not found)`,
  );
});

t.test('plain ldap:// without StartTLS is refused before connecting', async (t) => {
  t.throws(
    () => new DirectoryClient({ url: fx.ldapUrl, caPem: fx.caPem, baseDn: fx.baseDn }),
    /refusing plain-text LDAP/,
  );
});

t.test('no CA configured is refused', async (t) => {
  t.throws(() => new DirectoryClient({ url: fx.ldapsUrl, baseDn: fx.baseDn }), /no CA configured/);
});

t.test('a closed port gives DirectoryUnreachableError at once', async (t) => {
  // Port 1 on loopback: nothing listens there.
  const [err, ms] = await elapsed(
    client({ url: 'ldaps://127.0.0.1:1' }).bindUser('alice', fx.users.alice.password),
  );
  t.type(err, DirectoryUnreachableError);
  t.equal(
    (err as Error).message,
    'LDAP server ldaps://127.0.0.1:1 unreachable (connection refused: nothing listens on that port)',
  );
  t.ok(ms < 1000, `failed in ${ms} ms`);
});

t.test('a hung server fails within the connect timeout with DirectoryUnreachableError', async (t) => {
  await fx.pause();
  try {
    const [err, ms] = await elapsed(
      client({ connectTimeoutMs: 700 }).bindUser('alice', fx.users.alice.password),
    );
    t.type(err, DirectoryUnreachableError);
    t.equal(
      (err as Error).message,
      `LDAP server ${fx.ldapsUrl} unreachable (connect timed out after 700 ms)`,
    );
    t.ok(ms >= 650 && ms < 2000, `failed after ${ms} ms`);
  } finally {
    fx.resume();
  }
});

t.test('a hung server during StartTLS fails within the connect timeout', async (t) => {
  await fx.pause();
  try {
    const [err, ms] = await elapsed(
      client({ url: fx.ldapUrl, startTls: true, connectTimeoutMs: 500, timeoutMs: 500 }).bindUser(
        'alice',
        fx.users.alice.password,
      ),
    );
    t.ok(err instanceof DirectoryUnreachableError || err instanceof DirectoryTimeoutError, String(err));
    t.ok(ms < 1500, `failed after ${ms} ms`);
  } finally {
    fx.resume();
  }
});

t.test(
  'a server that hangs after the bind gives DirectoryTimeoutError within the operation timeout',
  async (t) => {
    const c = client({ timeoutMs: 600 });
    await c.bindService(fx.gatewayDn, fx.gatewayPassword);
    await fx.pause();
    try {
      const [err, ms] = await elapsed(c.allGroups());
      t.type(err, DirectoryTimeoutError);
      t.match(
        (err as Error).message,
        `LDAP server ${fx.ldapsUrl} did not answer the search for all GSRA groups within 600 ms`,
      );
      t.ok(ms >= 550 && ms < 2000, `failed after ${ms} ms`);
    } finally {
      fx.resume();
    }
  },
);

t.test('after the server restarts, the client reconnects and re-binds by itself', async (t) => {
  for (const startTls of [false, true]) {
    const c = client(startTls ? { url: fx.ldapUrl, startTls } : {});
    await c.bindService(fx.gatewayDn, fx.gatewayPassword);
    t.equal((await c.allGroups()).length, 2);
    await fx.restart();
    const groups = await c.allGroups();
    t.equal(groups.length, 2, `startTls=${startTls}: groups after restart`);
    t.equal(groups[0]?.keys.length, 1, `startTls=${startTls}: still authorised (keys readable)`);
  }
});

t.test(
  'while the server is down, operations fail with DirectoryUnreachableError; afterwards they work',
  async (t) => {
    const c = client();
    await c.bindService(fx.gatewayDn, fx.gatewayPassword);
    await fx.kill();
    try {
      await t.rejects(c.allGroups(), DirectoryUnreachableError);
    } finally {
      await fx.start();
    }
    t.equal((await c.allGroups()).length, 2);
  },
);

t.test('reading before logging in gives NotBoundError', async (t) => {
  await t.rejects(client().allGroups(), NotBoundError);
});

t.test('groupsOfUser as alice returns sales with its hosts and current key', async (t) => {
  const c = client();
  const me = await c.bindUser('alice', fx.users.alice.password);
  const groups = await c.groupsOfUser(me.dn);
  t.same(
    groups.map((g) => g.name),
    ['sales'],
  );
  const g = groups[0]!;
  t.equal(g.dn, fx.groups.sales.dn);
  t.same(g.hosts, [{ name: 'intra1.corp.example', address: '10.0.0.11' }]);
  t.equal(g.keys.length, 1);
  t.equal(g.keys[0]!.version, 1);
  t.ok(g.keys[0]!.key.equals(fx.groups.sales.key), 'key equals the fixture key');
  t.same(g.members, [fx.users.alice.dn]);
  t.type(g.keyRotatedAt, Date);
});

t.test('a member reads its own group key but not another group key (even bound)', async (t) => {
  const c = client();
  await c.bindUser('alice', fx.users.alice.password);
  const all = await c.allGroups();
  const dev = all.find((g) => g.name === 'dev');
  t.ok(dev, 'dev is visible as a group');
  t.same(dev!.keys, [], 'dev key not readable by alice');
  t.same(dev!.hosts, [{ name: 'intra2.corp.example', address: '10.0.0.12' }]);
  t.equal(all.find((g) => g.name === 'sales')!.keys.length, 1);
});

t.test('a non-member cannot even filter on a group key', async (t) => {
  const raw = new Client({
    url: fx.ldapsUrl,
    tlsOptions: { ca: [fx.caPem] },
    connectTimeout: 2000,
    timeout: 3000,
  });
  await raw.bind(fx.users.bob.dn, fx.users.bob.password);
  const r = await raw.search(fx.baseDn, { filter: '(gsraGroupKey=*)', attributes: ['cn'] });
  await raw.unbind();
  t.same(
    r.searchEntries.map((e) => e.cn),
    ['dev'],
  );
});

t.test('anonymous reads nothing', async (t) => {
  const raw = new Client({
    url: fx.ldapsUrl,
    tlsOptions: { ca: [fx.caPem] },
    connectTimeout: 2000,
    timeout: 3000,
  });
  const err = await raw.search(fx.baseDn, { filter: '(objectClass=*)' }).catch((e: unknown) => e);
  await raw.unbind();
  t.type(err, Error, 'anonymous search is refused');
  t.match(String((err as Error).message), /authentication required|Inappropriate|unwilling/i);
});

t.test('carol (in no group) gets NotInAnyGroupError', async (t) => {
  const c = client();
  const me = await c.bindUser('carol', fx.users.carol.password);
  const err = await c.groupsOfUser(me.dn).catch((e: unknown) => e);
  t.type(err, NotInAnyGroupError);
  t.equal(
    (err as Error).message,
    `account ${fx.users.carol.dn} is not in any GSRA group on ${fx.ldapsUrl}; ask IT to add it to a group (gsra-admin add-user <group> <user>)`,
  );
  t.same(await c.groupsOfUser(me.dn, { allowNone: true }), []);
});

t.test('a user reads its own secret, not another user secret', async (t) => {
  const c = client();
  await c.bindUser('alice', fx.users.alice.password);
  t.ok((await c.userSecret(fx.users.alice.dn)).equals(fx.users.alice.secret));
  await t.rejects(c.userSecret(fx.users.bob.dn), NoUserSecretError);
});

t.test('the gateway reads every group key and every user secret', async (t) => {
  const c = client();
  await c.bindService(fx.gatewayDn, fx.gatewayPassword);
  const groups = await c.allGroups();
  t.same(
    groups.map((g) => [g.name, g.keys.length, g.members]),
    [
      ['dev', 1, [fx.users.bob.dn]],
      ['sales', 1, [fx.users.alice.dn]],
    ],
  );
  t.ok(groups[0]!.keys[0]!.key.equals(fx.groups.dev.key));
  t.ok(groups[1]!.keys[0]!.key.equals(fx.groups.sales.key));
  t.ok((await c.userSecret(fx.users.bob.dn)).equals(fx.users.bob.secret));
  t.ok((await c.userSecret(fx.users.alice.dn)).equals(fx.users.alice.secret));
  t.same(await c.groupsOfUser(fx.users.bob.dn).then((g) => g.map((x) => x.name)), ['dev']);
});

t.test('findUser finds by uid, mail and DN', async (t) => {
  const c = client();
  await c.bindService(fx.gatewayDn, fx.gatewayPassword);
  t.equal((await c.findUser('bob')).dn, fx.users.bob.dn);
  t.equal((await c.findUser('bob@corp.example')).dn, fx.users.bob.dn);
  t.equal((await c.findUser(fx.users.bob.dn)).uid, 'bob');
  await t.rejects(c.findUser('nobody'), { code: 'no-such-user' });
});

t.test('every error is a DirectoryError with a code', async (t) => {
  const err = await client({ url: 'ldaps://127.0.0.1:1' })
    .bindService(fx.gatewayDn, fx.gatewayPassword)
    .catch((e: unknown) => e);
  t.type(err, DirectoryError);
  t.equal((err as DirectoryError).code, 'unreachable');
});
