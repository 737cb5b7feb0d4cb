import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkGatewayConfig } from '../src/config.ts';

const minimal = {
  publicAddress: '203.0.113.1',
  privateAddress: '10.0.0.1',
  wanInterface: 'wan0',
  lanInterface: 'lan0',
  ldap: {
    url: 'ldaps://10.0.0.5:636',
    caFile: '/etc/gsra/ca.pem',
    baseDn: 'dc=corp,dc=example',
    bindDn: 'uid=gateway,ou=services,dc=corp,dc=example',
    passwordFile: '/etc/gsra/ldap-password',
  },
};

t.test('a minimal config gets documented defaults', async (t) => {
  const c = checkGatewayConfig(structuredClone(minimal));
  t.equal(c.control.port, 4430);
  t.same([c.ports.first, c.ports.last], [40000, 59999]);
  t.equal(c.ldap.refreshSec, 30);
  t.equal(c.ops.listen, '127.0.0.1');
  t.same(c.engine.queues, [0, 8], 'the first queue of each side');
  t.equal(c.engine.queuesPerSide, 0, 'queues per side: one per CPU (native/lib/queues.ts)');
  t.equal(c.engine.spinUs, 0, 'queue threads sleep at once by default');
  t.equal(c.engine.gso, false, 'GSO super-packets left to the kernel by default');
  t.equal(c.engine.verdictThread, true, 'a verdict thread per queue by default');
});

t.test('errors name the path, what was expected and what was found', async (t) => {
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), publicAddress: 'gw.example' }),
    /publicAddress: expected ipv4, got "gw.example"/,
  );
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), ldap: { ...minimal.ldap, url: 'http://x' } }),
    /ldap.url: expected a string matching/,
  );
});

t.test('cross-field rules: range order, control port outside the range, ops address local', async (t) => {
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), ports: { first: 50000, last: 40000 } }),
    /ports.first: expected <= ports.last/,
  );
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), control: { port: 45000 } }),
    /control.port: expected outside/,
  );
  t.throws(
    () =>
      checkGatewayConfig({
        ...structuredClone(minimal),
        control: { keepaliveSec: 30, mappingLifetimeSec: 40 },
      }),
    /control.mappingLifetimeSec: expected at least twice control.keepaliveSec \(30\), got 40/,
  );
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), ops: { listen: '203.0.113.1' } }),
    /ops.listen: expected a loopback or LAN address/,
  );
});

/** The ```json blocks of a document in docs/. */
function jsonBlocks(doc: string): unknown[] {
  const text = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', doc), 'utf8');
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!.replace(/^ {3}/gm, '')));
}

t.test('the documented configs are accepted as written (every documented key)', async (t) => {
  const [full] = jsonBlocks('gateway.md');
  const c = checkGatewayConfig(full);
  t.equal(c.offboarding.liveFlows, 'cut');
  const ad = jsonBlocks('ldap.md').find((b) => (b as { flavor?: string }).flavor === 'ad') as object;
  t.ok(ad, 'docs/ldap.md has the AD gateway block');
  const withAd = checkGatewayConfig({ ...structuredClone(minimal), ldap: ad });
  t.match(withAd.ldap, { flavor: 'ad', groupsDn: 'OU=GSRA,DC=corp,DC=example', upnSuffix: 'corp.example' });
});

t.test('offboarding.liveFlows is cut or keep', async (t) => {
  t.equal(checkGatewayConfig(structuredClone(minimal)).offboarding.liveFlows, 'cut', 'default: cut');
  t.equal(
    checkGatewayConfig({ ...structuredClone(minimal), offboarding: { liveFlows: 'keep' } }).offboarding
      .liveFlows,
    'keep',
  );
  t.throws(
    () => checkGatewayConfig({ ...structuredClone(minimal), offboarding: { liveFlows: 'maybe' } }),
    /offboarding.liveFlows: expected one of "cut", "keep", got "maybe"/,
  );
});
