// Paged searches: the fixture's slapd refuses unpaged searches above 500 entries (like AD's
// MaxPageSize), so reading 650 groups only works if the client really pages.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { startSlapd, type SlapdFixture } from '../src/fixture/index.ts';
import { DirectoryClient } from '../src/index.ts';

const run = promisify(execFile);
let fx: SlapdFixture;
const EXTRA = 648;

t.before(async () => {
  fx = await startSlapd();
  const ldif = Array.from(
    { length: EXTRA },
    (_, i) =>
      `dn: cn=bulk${i},${fx.groupsDn}\nobjectClass: groupOfNames\nobjectClass: gsraAccessGroup\ncn: bulk${i}\nmember: ${fx.users.alice.dn}\ngsraHost: h${i}.corp.example 10.1.${i >> 8}.${i & 255}\ngsraGroupKeyVersion: 1\n`,
  ).join('\n');
  writeFileSync(join(fx.dir, 'bulk.ldif'), ldif);
  await run(
    'ldapadd',
    ['-x', '-H', fx.ldapsUrl, '-D', fx.rootDn, '-w', fx.rootPassword, '-f', join(fx.dir, 'bulk.ldif')],
    {
      env: { ...process.env, LDAPTLS_CACERT: fx.caFile },
    },
  );
});
t.teardown(() => fx.stop());

t.test('an unpaged search above the server size limit fails (the limit is real)', async (t) => {
  const raw = new Client({
    url: fx.ldapsUrl,
    tlsOptions: { ca: [fx.caPem] },
    connectTimeout: 2000,
    timeout: 5000,
  });
  await raw.bind(fx.gatewayDn, fx.gatewayPassword);
  await t.rejects(raw.search(fx.groupsDn, { filter: '(objectClass=gsraAccessGroup)', attributes: ['cn'] }), {
    code: 4,
  });
  await raw.unbind();
});

t.test('allGroups and groupsOfUser page through all 650 groups', async (t) => {
  const c = new DirectoryClient({
    url: fx.ldapsUrl,
    caPem: fx.caPem,
    baseDn: fx.baseDn,
    connectTimeoutMs: 2000,
    timeoutMs: 5000,
  });
  await c.bindService(fx.gatewayDn, fx.gatewayPassword);
  t.equal((await c.allGroups()).length, EXTRA + 2);
  t.equal((await c.groupsOfUser(fx.users.alice.dn)).length, EXTRA + 1);
  await c.close();
});
