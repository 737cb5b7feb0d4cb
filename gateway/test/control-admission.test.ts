// The control plane's admission: HELLO/AUTH per source, answers to unproven sources from a
// budget, bounded memory whatever the number of sources.
import t from 'tap';
import { ControlAdmission, KeyedLimiter, ProvenSources } from '../src/control-admission.ts';

const T0 = 1_790_000_000_000;
const hello = Buffer.from([0x47, 0x53, 2, 0x01, ...Array(124).fill(0)]);
const auth = Buffer.from([0x47, 0x53, 2, 0x03]);
const keepalive = Buffer.from([0x47, 0x53, 2, 0x16]);

t.test('a source gets its burst of HELLOs, then its rate; another source is not affected', async (t) => {
  const a = new ControlAdmission({ hello: { rate: 10, burst: 20 } }, T0);
  const ok = (addr: string, now: number) => a.admit(hello, addr, now) === 'ok';
  let n = 0;
  for (let i = 0; i < 100; i++) if (ok('198.51.100.1', T0)) n++;
  t.equal(n, 20, 'the burst');
  t.notOk(ok('198.51.100.1', T0 + 50), 'nothing more at once');
  t.ok(ok('198.51.100.1', T0 + 150), 'one more after 1/rate');
  t.ok(ok('198.51.100.2', T0), 'another source has its own burst');
  t.equal(a.admit(keepalive, '198.51.100.1', T0), 'ok', 'session messages are not limited here');
  t.equal(a.admit(Buffer.from('junk'), '198.51.100.1', T0), 'ok', 'not GSRA: the state machine drops it');
});

t.test('AUTH has its own bucket', async (t) => {
  const a = new ControlAdmission({ hello: { rate: 1, burst: 1 }, auth: { rate: 1, burst: 2 } }, T0);
  t.equal(a.admit(hello, 'x', T0), 'ok');
  t.equal(a.admit(hello, 'x', T0), 'rate-limited');
  t.equal(a.admit(auth, 'x', T0), 'ok');
  t.equal(a.admit(auth, 'x', T0), 'ok');
  t.equal(a.admit(auth, 'x', T0), 'rate-limited');
});

t.test('memory stays bounded under 100 000 sources', async (t) => {
  const l = new KeyedLimiter({ rate: 1, burst: 1 }, 1000);
  for (let i = 0; i < 100_000; i++) l.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, T0);
  t.equal(l.size, 1000);
  const p = new ProvenSources(60_000, 500);
  for (let i = 0; i < 10_000; i++) p.add(`a${i}`, T0);
  t.equal(p.size, 500);
  t.ok(p.has('a9999', T0), 'the newest stays');
  t.notOk(p.has('a0', T0), 'the oldest went');
  t.notOk(p.has('a9999', T0 + 60_001), 'proven only for its time');
});

t.test(
  'answers: session traffic and proven or peer addresses first; unproven ones from the budget, the rest shed',
  async (t) => {
    const a = new ControlAdmission({ unproven: { rate: 100, burst: 5 } }, T0);
    const noPeer = () => false;
    t.equal(a.path({ to: { addr: '198.51.100.9' } }, T0, noPeer), 'priority', 'session traffic');
    a.proven.add('203.0.113.2', T0);
    const paths: string[] = [];
    for (let i = 0; i < 10; i++)
      paths.push(a.path({ to: { addr: `192.0.2.${i}` }, unproven: true }, T0, noPeer));
    t.same(paths, ['bulk', 'bulk', 'bulk', 'bulk', 'bulk', 'shed', 'shed', 'shed', 'shed', 'shed']);
    t.equal(
      a.path({ to: { addr: '203.0.113.2' }, unproven: true }, T0, noPeer),
      'priority',
      'a proven address',
    );
    t.equal(
      a.path({ to: { addr: '203.0.113.7' }, unproven: true }, T0, (x) => x === '203.0.113.7'),
      'priority',
      'a live session’s address',
    );
    t.equal(
      a.path({ to: { addr: '192.0.2.99' }, unproven: true }, T0 + 20, noPeer),
      'bulk',
      'the budget refills',
    );
  },
);
