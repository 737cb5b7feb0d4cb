// The port pool only hands out and takes back numbers: distinct, in range, within the per-user and
// per-source limits. How long a port stays reserved is the reservation table's business (its
// lifetime tests are in common/test/protocol/reservation-table.test.ts).
import t from 'tap';
import { PortPool } from '../src/ports.ts';

const limits = { perUser: 4, perSource: 6 };
const alice = (source = 'x') => ({ user: 'alice', source });
const bob = (source = 'y') => ({ user: 'bob', source });

t.test('hands out distinct ports inside the range', async (t) => {
  const pool = new PortPool(40000, 40009, limits);
  const ports = pool.take(alice('203.0.113.2'), 4);
  t.equal((ports as number[]).length, 4, 'four ports, not a refusal');
  t.equal(new Set(ports as number[]).size, 4);
  t.ok((ports as number[]).every((p) => p >= 40000 && p <= 40009));
  t.equal(pool.inUse, 4);
  t.ok(
    (ports as number[]).every((p) => pool.isTaken(p)),
    'each is out of the pool',
  );
});

t.test('refuses past the per-user limit and takes nothing then', async (t) => {
  const pool = new PortPool(40000, 40099, limits);
  pool.take(alice('a'), 3);
  t.equal(pool.take(alice('b'), 2), 'user-limit');
  t.equal(pool.countUser('alice'), 3);
  t.equal(pool.inUse, 3);
});

t.test('refuses past the per-source limit (many users behind one NAT address)', async (t) => {
  const pool = new PortPool(40000, 40099, limits);
  pool.take(alice('hr'), 4);
  t.equal(pool.take(bob('hr'), 3), 'source-limit');
  t.equal((pool.take(bob('hr'), 2) as number[]).length, 2, 'within the limit: granted');
});

t.test('refuses when the range is exhausted', async (t) => {
  const pool = new PortPool(40000, 40001, { perUser: 10, perSource: 10 });
  t.same((pool.take(alice('a'), 2) as number[]).sort(), [40000, 40001]);
  t.equal(pool.take(bob('b'), 1), 'no-ports');
});

t.test('give frees the port and the counts; the port can be handed out again', async (t) => {
  const pool = new PortPool(40000, 40000, limits);
  const [p] = pool.take(alice(), 1) as number[];
  t.equal(p, 40000);
  t.equal(pool.take(bob(), 1), 'no-ports', 'the only port is out');
  t.ok(pool.give(alice(), p!));
  t.equal(pool.countUser('alice'), 0);
  t.equal(pool.inUse, 0);
  t.same(pool.take(bob(), 1), [40000], 'the port is free again');
});

t.test('giving back a port that is not out of the pool changes nothing', async (t) => {
  const pool = new PortPool(40000, 40003, limits);
  pool.take(alice(), 1);
  t.notOk(pool.give(alice(), 40099), 'outside the range');
  const free = [40000, 40001, 40002, 40003].find((p) => !pool.isTaken(p))!;
  t.notOk(pool.give(alice(), free), 'a free port');
  t.equal(pool.inUse, 1);
  t.equal(pool.countUser('alice'), 1);
});

t.test('a TCP port whose server may hold TIME_WAIT is not handed out toward that server', async (t) => {
  const pool = new PortPool(40000, 40000, { perUser: 10, perSource: 10 });
  const [p] = pool.take(alice(), 1) as number[];
  pool.give(alice(), p!, { pin: '10.0.0.11', until: 65_000 });
  t.equal(pool.take(alice(), 1, { pin: '10.0.0.11', now: 1000 }), 'cooling', 'the same IN: not yet');
  t.equal(pool.cooling(1000), 1);
  t.same(pool.take(alice(), 1, { pin: '10.0.0.12', now: 1000 }), [40000], 'another IN: at once');
  pool.give(alice(), 40000);
  t.same(pool.take(alice(), 1, { pin: '10.0.0.11', now: 65_000 }), [40000], 'the same IN once cooled');
  t.equal(pool.cooling(65_000), 0);
});

t.test('when most free ports cool toward an IN, one that does not is still found', async (t) => {
  const pool = new PortPool(40000, 40999, { perUser: 2000, perSource: 2000 });
  const all = pool.take(alice(), 1000) as number[];
  for (const p of all) if (p !== 40500) pool.give(alice(), p, { pin: '10.0.0.11', until: 65_000 });
  pool.give(alice(), 40500);
  t.same(pool.take(alice(), 1, { pin: '10.0.0.11', now: 1 }), [40500]);
  t.equal(pool.take(alice(), 1, { pin: '10.0.0.11', now: 1 }), 'cooling', 'and then none is left');
  t.equal(pool.inUse, 1, 'a refusal takes nothing');
});

t.test('claim takes a given port back for its owner (a restart); refuses one already out', async (t) => {
  const pool = new PortPool(40000, 40009, { perUser: 10, perSource: 20 });
  t.ok(pool.claim(alice('hr'), 40007));
  t.notOk(pool.claim(bob('hr'), 40007), 'already out');
  t.notOk(pool.claim(bob('hr'), 50000), 'outside the range');
  t.equal(pool.countUser('alice'), 1);
  const rest = pool.take(bob('x'), 9) as number[];
  t.equal(rest.length, 9);
  t.notOk(rest.includes(40007), 'never handed out twice');
});
