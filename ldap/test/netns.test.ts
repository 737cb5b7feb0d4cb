// The lab runs the slapd fixture inside a network namespace (spawnPrefix) on that namespace's
// address; the certificate must name that address and the readiness check must work from the
// host namespace (it uses the ldapi socket). Here: a namespace of our own on a veth /30.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { startSlapd, type SlapdFixture } from '../src/fixture/index.ts';
import { DirectoryClient } from '../src/index.ts';

const n = 1 + (process.pid % 250);
const tag = `${process.pid % 100000}`;
const ns = `gsrasl${tag}`;
const vh = `gslh${tag}`;
const vn = `gsln${tag}`;
const hostIp = `10.251.${n}.1`;
const nsIp = `10.251.${n}.2`;
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
let fx: SlapdFixture | undefined;

t.before(() => {
  ip('netns', 'add', ns);
  ip('link', 'add', vh, 'type', 'veth', 'peer', 'name', vn);
  ip('link', 'set', vn, 'netns', ns);
  ip('addr', 'add', `${hostIp}/30`, 'dev', vh);
  ip('link', 'set', vh, 'up');
  ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', vn);
  ip('netns', 'exec', ns, 'ip', 'link', 'set', vn, 'up');
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
});
t.teardown(async () => {
  await fx?.stop();
  try {
    ip('link', 'del', vh);
  } catch {
    /* gone with the namespace */
  }
  ip('netns', 'del', ns);
});

t.test('slapd in a namespace on fixed ports 389/636, reached from the host over TLS', async (t) => {
  fx = await startSlapd({
    host: nsIp,
    spawnPrefix: ['ip', 'netns', 'exec', ns],
    ports: { ldap: 389, ldaps: 636 },
  });
  t.equal(fx.ldapsUrl, `ldaps://${nsIp}:636`);
  for (const opts of [{ url: fx.ldapsUrl }, { url: fx.ldapUrl, startTls: true }]) {
    const c = new DirectoryClient({
      ...opts,
      caPem: fx.caPem,
      baseDn: fx.baseDn,
      connectTimeoutMs: 2000,
      timeoutMs: 3000,
    });
    const me = await c.bindUser('bob', fx.users.bob.password);
    const [dev] = await c.groupsOfUser(me.dn);
    t.ok(dev?.keys[0]?.key.equals(fx.groups.dev.key), `${opts.url}: bob reads the dev key`);
    await c.close();
  }
  const pid = fx.pid;
  await fx.stop();
  t.throws(() => process.kill(pid as number, 0), 'slapd is gone after stop()');
});
