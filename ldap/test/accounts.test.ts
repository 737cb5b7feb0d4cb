// Account state (pure): disabled, locked and expired accounts on AD and OpenLDAP.
import t from 'tap';
import { accountState, fileTimeToMs } from '../src/accounts.ts';

const NOW = Date.UTC(2026, 5, 1);
const fileTime = (ms: number) => String((BigInt(ms) + 11_644_473_600_000n) * 10_000n);

t.test('AD', async (t) => {
  const ad = (e: Record<string, string>) => accountState({ dn: 'cn=x', ...e }, 'ad', NOW);
  t.same(ad({ userAccountControl: '512', accountExpires: '9223372036854775807' }), { usable: true });
  t.same(ad({ userAccountControl: '512', accountExpires: '0' }), { usable: true }, '0 = never');
  t.match(ad({ userAccountControl: '514' }), { usable: false, problem: 'disabled' });
  t.match(
    ad({ userAccountControl: '528' }),
    { usable: false, problem: 'locked' },
    'LOCKOUT in the stored value',
  );
  t.match(
    ad({ userAccountControl: '512', 'msDS-User-Account-Control-Computed': '16' }),
    { usable: false, problem: 'locked' },
    'the live lockout bit',
  );
  t.match(ad({ userAccountControl: '512', accountExpires: fileTime(NOW - 1000) }), {
    usable: false,
    problem: 'expired',
    detail: /expired on 2026-05-31T23:59:59/,
  });
  t.same(ad({ userAccountControl: '512', accountExpires: fileTime(NOW + 86_400_000) }), { usable: true });
  t.equal(fileTimeToMs(fileTime(NOW)), NOW);
  t.equal(fileTimeToMs('garbage'), undefined);
});

t.test('OpenLDAP (ppolicy, shadowExpire)', async (t) => {
  const ol = (e: Record<string, string>) => accountState({ dn: 'uid=x', ...e }, 'openldap', NOW);
  t.same(ol({}), { usable: true });
  t.match(ol({ pwdAccountLockedTime: '000001010000Z' }), {
    usable: false,
    problem: 'locked',
    detail: 'the account is locked by an administrator',
  });
  t.match(ol({ pwdAccountLockedTime: '20260531120000Z' }), { usable: false, problem: 'locked' });
  t.match(ol({ pwdEndTime: '20260501000000Z' }), { usable: false, problem: 'expired' });
  t.same(ol({ pwdEndTime: '20270101000000Z' }), { usable: true });
  t.match(ol({ pwdStartTime: '20270101000000Z' }), { usable: false, problem: 'disabled' });
  t.match(ol({ shadowExpire: String(Math.floor(NOW / 86_400_000) - 1) }), {
    usable: false,
    problem: 'expired',
  });
  t.same(ol({ shadowExpire: '-1' }), { usable: true });
});
