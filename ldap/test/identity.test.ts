// User-id canonicalisation (pure): every form a user may type or an agent may send maps to one
// account, named by the directory's own id; ambiguous ids map to nothing.
import t from 'tap';
import { UserIndex, dnsDomainOf, normalizeDn, parseUserId } from '../src/identity.ts';

t.test('parseUserId tells the forms apart', async (t) => {
  t.same(parseUserId(' Alice '), { form: 'bare', value: 'alice' });
  t.same(parseUserId('Alice@Corp.Example'), { form: 'upn', value: 'alice@corp.example' });
  t.same(parseUserId('CORP\\Alice'), { form: 'nt', value: 'alice', domain: 'corp' });
  t.same(parseUserId('corp.example\\alice'), { form: 'nt', value: 'alice', domain: 'corp.example' });
  t.same(parseUserId('UID=Alice, OU=People,DC=corp'), { form: 'dn', value: 'uid=alice,ou=people,dc=corp' });
  for (const bad of ['', '   ', '\\alice', 'corp\\', 'a\\b\\c', 'x'.repeat(300)])
    t.equal(parseUserId(bad), undefined, JSON.stringify(bad.slice(0, 10)));
});

t.test('normalizeDn: case and blanks around separators do not matter; escaped commas stay', async (t) => {
  t.equal(normalizeDn('CN=Erin Wong , CN=Users,DC=corp'), 'cn=erin wong,cn=users,dc=corp');
  t.equal(normalizeDn('cn=Wong\\, Erin,dc=corp'), 'cn=wong\\, erin,dc=corp');
  t.equal(dnsDomainOf('DC=corp,DC=example'), 'corp.example');
  t.equal(dnsDomainOf('o=acme'), undefined);
});

const AD_USERS = [
  { dn: 'CN=alice,CN=Users,DC=corp,DC=example', uid: 'alice', upn: 'alice@corp.example' },
  { dn: 'CN=Erin Wong,CN=Users,DC=corp,DC=example', uid: 'ewong', upn: 'erin.wong@corp.example' },
  { dn: 'CN=Admin,CN=Users,DC=corp,DC=example', uid: 'Administrator' },
];

t.test(
  'AD: sAMAccountName, UPN, implicit UPN, DOMAIN\\name, dns-domain\\name, DN, bare id + upnSuffix',
  async (t) => {
    const ix = new UserIndex(AD_USERS, {
      flavor: 'ad',
      dnsDomains: ['corp.example'],
      upnSuffix: 'corp.example',
    });
    const erin = AD_USERS[1];
    for (const form of [
      'ewong',
      'EWONG',
      'erin.wong@corp.example',
      'Erin.Wong@CORP.EXAMPLE',
      'ewong@corp.example',
      'CORP\\ewong',
      'corp.example\\EWong',
      'cn=erin wong,cn=users,dc=corp,dc=example',
      'erin.wong',
    ])
      t.equal(ix.resolve(form), erin, form);
    t.equal(ix.resolve('administrator@corp.example'), AD_USERS[2], 'implicit UPN of an account without one');
    t.equal(ix.resolve('ewong@other.example'), undefined, 'implicit UPN only in the domain of the base DN');
    t.equal(ix.resolve('erin.wong@other.example'), undefined);
    t.equal(ix.resolve('nobody'), undefined);
    const noSuffix = new UserIndex(AD_USERS, { flavor: 'ad' });
    t.equal(noSuffix.resolve('erin.wong'), undefined, 'a bare UPN prefix needs the upnSuffix');
  },
);

t.test('an id two accounts claim resolves to neither, and is reported', async (t) => {
  const ix = new UserIndex(
    [
      { dn: 'uid=a,ou=people,dc=x', uid: 'a', upn: 'team@x' },
      { dn: 'uid=b,ou=people,dc=x', uid: 'b', upn: 'team@x' },
      { dn: 'uid=c,ou=people,dc=x', uid: 'c', upn: 'team@x' },
    ],
    { flavor: 'openldap' },
  );
  t.equal(ix.resolve('team@x'), undefined);
  t.equal(ix.resolve('b')?.uid, 'b', 'their own ids still work');
  t.same(ix.ambiguous, ['mail team@x']);
  t.equal(ix.size, 3);
});
