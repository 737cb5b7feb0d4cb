// The reservation table on its own: one row per (proto, t), one lifetime per row (unused, then
// mapped, renewed by KEEPALIVE), an index by session, and ids that name a row for the data plane.
import t from 'tap';
import { deriveFlowKeys, ReservationTable, type NewReservation } from '../../src/protocol/index.ts';

const row = (t: number, proto: 6 | 17 = 6, sessionId = 's1'): NewReservation => ({
  proto,
  t,
  serial: t - 40000,
  keys: deriveFlowKeys(Buffer.alloc(32, 3), proto, t, t - 40000),
  sessionId,
  user: 'alice',
  userDn: 'uid=alice,ou=people,dc=corp',
  group: 'sales',
  inName: 'intra1.corp.example',
  pin: '10.0.0.11',
  en: { addr: '203.0.113.2', port: 61000 },
});
const table = () => new ReservationTable({ unused: 1000, mapped: 5000 });

t.test('an unused row ends at the unused lifetime; a mapped one lives the mapped lifetime', async (t) => {
  const tab = table();
  const a = tab.add(row(40000), 0);
  const b = tab.add(row(40001), 0);
  tab.map(b, 80, 0, { ghr: '203.0.113.2', m: 1234 });
  t.same(tab.due(999), [], 'nothing before the lifetime');
  t.same(tab.due(1000), [a], 'the unused row at 1000 ms');
  t.same(tab.due(4999), [a], 'the mapped one lives on');
  t.same(tab.due(5000), [a, b], 'the mapped row at 5000 ms');
  t.equal(tab.nextExpiry(), 1000);
});

t.test('KEEPALIVE renews every row of the session, and only of that session', async (t) => {
  const tab = table();
  const a = tab.add(row(40000), 0);
  const other = tab.add(row(40001, 6, 's2'), 0);
  tab.renew('s1', 900);
  t.same(tab.due(1500), [other], 'the other session’s row was not renewed');
  t.same(tab.due(1900), [a, other]);
  t.equal(a.expiresAt, 1900);
});

t.test(
  'a port is one row per protocol: the same t for UDP is another row, a second TCP row throws',
  async (t) => {
    const tab = table();
    tab.add(row(40000, 6), 0);
    tab.add(row(40000, 17), 0);
    t.equal(tab.size, 2);
    t.throws(() => tab.add(row(40000, 6), 0), /exists/);
    t.equal(tab.get(17, 40000)?.proto, 17);
  },
);

t.test('every row gets an id of its own, never reused', async (t) => {
  const tab = table();
  const a = tab.add(row(40000), 0);
  tab.delete(a);
  const b = tab.add(row(40000), 0);
  t.not(a.id, b.id, 'a new row on the same port has a new id');
});

t.test('delete removes the row from the table and from its session; a second delete is false', async (t) => {
  const tab = table();
  const a = tab.add(row(40000), 0);
  tab.add(row(40001), 0);
  t.equal(tab.countOf('s1'), 2);
  t.ok(tab.delete(a));
  t.notOk(tab.delete(a), 'already gone');
  t.equal(tab.get(6, 40000), undefined);
  t.same(
    tab.ofSession('s1').map((r) => r.t),
    [40001],
  );
  t.equal(tab.countOf('s1'), 1);
});

t.test('deleting a row that a newer one replaced leaves the newer one alone', async (t) => {
  const tab = table();
  const old = tab.add(row(40000), 0);
  tab.delete(old);
  const now = tab.add(row(40000), 0);
  t.notOk(tab.delete(old));
  t.equal(tab.get(6, 40000), now);
});

t.test('an empty table has no deadline', async (t) => {
  t.equal(table().nextExpiry(), null);
});
