// The agent's documented configs are accepted as written (every documented key).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkAgentConfig } from '../src/config.ts';

const doc = readFileSync(
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'agent.md'),
  'utf8',
);
const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map(
  (m) => JSON.parse(m[1]!) as Record<string, unknown>,
);

t.test('docs/agent.md: the full example and the AD ldap section', async (t) => {
  const [full, ad] = blocks;
  const c = checkAgentConfig(full);
  t.equal(c.login.maxAgeHours, 168);
  t.equal(c.ldap.flavor, 'openldap');
  const withAd = checkAgentConfig({ ...full, ldap: ad });
  t.match(withAd.ldap, { flavor: 'ad', upnSuffix: 'corp.example' });
});

t.test('login.maxAgeHours defaults to 7 days and must be positive; upnSuffix is a domain', async (t) => {
  const base = {
    gateway: { address: '203.0.113.1' },
    zones: ['corp.example'],
    ldap: { url: 'ldaps://x', caFile: 'c', baseDn: 'dc=x' },
  };
  t.equal(checkAgentConfig(structuredClone(base)).login.maxAgeHours, 168);
  t.throws(
    () => checkAgentConfig({ ...structuredClone(base), login: { maxAgeHours: 0 } }),
    /login.maxAgeHours/,
  );
  t.throws(
    () => checkAgentConfig({ ...structuredClone(base), ldap: { ...base.ldap, upnSuffix: '@corp.example' } }),
    /ldap.upnSuffix: expected a string matching/,
  );
});
