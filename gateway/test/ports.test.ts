import t from 'tap';
import { PortPool } from '../src/ports.ts';

const limits = { perUser: 4, perSource: 6, ttlMs: 1000 };

t.test('reserves distinct ports inside the range', async (t) => {
  const pool = new PortPool(40000, 40009, limits);
  const got = pool.reserve('alice', '203.0.113.2', 4, 0);
  t.ok(Array.isArray(got));
  const ports = (got as { port: number }[]).map((r) => r.port);
  t.equal(new Set(ports).size, 4);
  t.ok(ports.every((p) => p >= 40000 && p <= 40009));
  t.equal(pool.inUse, 4);
});

t.test('refuses past the per-user limit and reserves nothing then', async (t) => {
  const pool = new PortPool(40000, 40099, limits);
  pool.reserve('alice', 'a', 3, 0);
  t.equal(pool.reserve('alice', 'b', 2, 0), 'user-limit');
  t.equal(pool.countUser('alice'), 3);
});

t.test('refuses past the per-source limit (many users behind one NAT address)', async (t) => {
  const pool = new PortPool(40000, 40099, limits);
  pool.reserve('alice', 'hr', 4, 0);
  t.equal(pool.reserve('bob', 'hr', 3, 0), 'source-limit');
  t.ok(Array.isArray(pool.reserve('bob', 'hr', 2, 0)));
});

t.test('refuses when the range is exhausted', async (t) => {
  const pool = new PortPool(40000, 40001, { ...limits, perUser: 10, perSource: 10 });
  t.ok(Array.isArray(pool.reserve('alice', 'a', 2, 0)));
  t.equal(pool.reserve('bob', 'b', 1, 0), 'no-ports');
});

t.test('unbound reservations expire after the TTL; bound ones do not', async (t) => {
  const pool = new PortPool(40000, 40009, limits);
  const [a, b] = pool.reserve('alice', 'x', 2, 0) as { port: number }[];
  pool.bind(b!.port);
  t.same(
    pool.expire(999).map((r) => r.port),
    [],
  );
  t.same(
    pool.expire(1000).map((r) => r.port),
    [a!.port],
  );
  t.ok(pool.get(b!.port));
  t.equal(pool.countUser('alice'), 1);
});

t.test('renew pushes the expiry; release frees the port and the counts', async (t) => {
  const pool = new PortPool(40000, 40000, limits);
  const [r] = pool.reserve('alice', 'x', 1, 0) as { port: number }[];
  t.ok(pool.renew(r!.port, 900));
  t.same(pool.expire(1500), []);
  t.equal(pool.release(r!.port)?.user, 'alice');
  t.equal(pool.countUser('alice'), 0);
  t.ok(Array.isArray(pool.reserve('bob', 'y', 1, 2000)), 'the port is free again');
});

t.test('exhausted range reclaims expired reservations before refusing', async (t) => {
  const pool = new PortPool(40000, 40000, limits);
  pool.reserve('alice', 'x', 1, 0);
  t.ok(Array.isArray(pool.reserve('bob', 'y', 1, 5000)));
});
