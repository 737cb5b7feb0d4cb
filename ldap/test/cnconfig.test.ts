// The OpenLDAP set-up steps of docs/ldap.md, run literally against a cn=config slapd:
// load ldap/schema/gsra.ldif with ldapadd -Y EXTERNAL, apply gsra-acl.ldif with ldapmodify,
// add the directory, and check that the ACLs then do what the docs promise.
import t from 'tap';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createTestCa,
  issueServerCert,
  makeDemoDirectory,
  demoLdif,
  SCHEMA_DIR,
} from '../src/fixture/index.ts';
import { DirectoryClient } from '../src/index.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'gsra-cnconfig-'));
let slapd: ChildProcess | undefined;

t.teardown(() => {
  slapd?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

t.test('schema and ACL files load into a cn=config server and enforce the key ACLs', async (t) => {
  const ca = await createTestCa(join(dir, 'tls'));
  const cert = await issueServerCert(ca, join(dir, 'tls'), ['127.0.0.1', 'localhost']);
  const base = 'dc=corp,dc=example';
  mkdirSync(join(dir, 'slapd.d'));
  mkdirSync(join(dir, 'data'));
  const peercred = 'gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth';
  writeFileSync(
    join(dir, 'config.ldif'),
    `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
olcTLSCACertificateFile: ${ca.certFile}
olcTLSCertificateFile: ${cert.certFile}
olcTLSCertificateKeyFile: ${cert.keyFile}

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=${peercred} manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${base}
olcRootDN: cn=admin,${base}
olcRootPW: root-secret
olcDbDirectory: ${dir}/data
olcDbMaxSize: 67108864
`,
  );
  await run('slapadd', ['-n0', '-F', join(dir, 'slapd.d'), '-l', join(dir, 'config.ldif')]);
  const sock = join(dir, 'ldapi');
  const ldapi = `ldapi://${encodeURIComponent(sock)}`;
  const port = 20000 + Math.floor(Math.random() * 12768); // below the ephemeral range: no connection holds it
  slapd = spawn(
    'slapd',
    ['-d', '0', '-F', join(dir, 'slapd.d'), '-h', `ldaps://127.0.0.1:${port}/ ${ldapi}`],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(sock);
      s.once('connect', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 10));
  }

  // The documented steps.
  await run('ldapadd', ['-Q', '-Y', 'EXTERNAL', '-H', ldapi, '-f', join(SCHEMA_DIR, 'gsra.ldif')]);
  const acl = readFileSync(join(SCHEMA_DIR, 'gsra-acl.ldif'), 'utf8').replaceAll('@BASE@', base);
  writeFileSync(join(dir, 'acl.ldif'), acl);
  await run('ldapmodify', ['-Q', '-Y', 'EXTERNAL', '-H', ldapi, '-f', join(dir, 'acl.ldif')]);
  const demo = makeDemoDirectory(base);
  writeFileSync(join(dir, 'demo.ldif'), demoLdif(demo));
  // Simple binds now need TLS (olcSecurity simple_bind=128), so add the data over LDAPS.
  await run(
    'ldapadd',
    [
      '-x',
      '-D',
      `cn=admin,${base}`,
      '-w',
      'root-secret',
      '-H',
      `ldaps://127.0.0.1:${port}`,
      '-f',
      join(dir, 'demo.ldif'),
    ],
    {
      env: { ...process.env, LDAPTLS_CACERT: ca.certFile },
    },
  );

  const client = () =>
    new DirectoryClient({
      url: `ldaps://127.0.0.1:${port}`,
      caPem: ca.certPem,
      baseDn: base,
      connectTimeoutMs: 2000,
      timeoutMs: 3000,
    });
  const alice = client();
  await alice.bindUser('alice', demo.users.alice.password);
  const seen = Object.fromEntries((await alice.allGroups()).map((g) => [g.name, g.keys.length]));
  t.same(seen, { dev: 0, sales: 1 }, 'alice reads the sales key only');
  t.ok((await alice.userSecret(demo.users.alice.dn)).equals(demo.users.alice.secret));
  await alice.close();
  const gw = client();
  await gw.bindService(demo.gatewayDn, demo.gatewayPassword);
  t.same(
    (await gw.allGroups()).map((g) => [g.name, g.keys.length]),
    [
      ['dev', 1],
      ['sales', 1],
    ],
    'the gateway reads both keys',
  );
  await gw.close();
  const anon = await run(
    'ldapsearch',
    ['-x', '-H', `ldaps://127.0.0.1:${port}`, '-b', base, '(objectClass=*)'],
    {
      env: { ...process.env, LDAPTLS_CACERT: ca.certFile },
    },
  ).catch((e: { stdout: string }) => e);
  t.notMatch(String((anon as { stdout: string }).stdout), 'dn: ', 'anonymous sees no entries');
});
