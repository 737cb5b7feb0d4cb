// The N-API boundary refuses what it cannot use: wrong argument types throw TypeError, wrong
// values throw plain Errors, garbage packets are dropped and counted — never a crash.
import t from 'tap';
import { Engine, native } from '../index.ts';
import { keys } from '../packets.ts';

const PEN = '192.168.1.10';
const VIN = '100.64.0.5';
const GGR = '203.0.113.1';
const PGR = '10.0.0.1';
const PIN = '10.0.0.11';

t.test('wrong argument types throw TypeError, never crash', async (t) => {
  const n = native();
  const good = { role: 'agent', vinNet: '100.64.0.0/16' };
  const h = n.createEngine(good);
  const bad: [string, () => unknown][] = [
    ['createEngine(5)', () => n.createEngine(5)],
    ['createEngine(role)', () => n.createEngine({ role: 'router' })],
    ['createEngine(vinNet)', () => n.createEngine({ role: 'agent', vinNet: '100.64.0.0' })],
    ['createEngine(gateway no ggr)', () => n.createEngine({ role: 'gateway', pgr: '10.0.0.1' })],
    ['createEngine(timeouts)', () => n.createEngine({ ...good, timeouts: { heldMs: -1 } })],
    ['createEngine(punt)', () => n.createEngine({ ...good, punt: [{ hook: 'x', proto: 'udp' }] })],
    ['process(no handle)', () => n.process({}, Buffer.alloc(20), 'out')],
    ['process(null handle)', () => n.process(null, Buffer.alloc(20), 'out')],
    ['process(string packet)', () => n.process(h, 'packet', 'out')],
    ['process(Uint16Array)', () => n.process(h, new Uint16Array(10), 'out')],
    ['process(hook)', () => n.process(h, Buffer.alloc(20), 'sideways')],
    ['process(hook number)', () => n.process(h, Buffer.alloc(20), 1)],
    ['addFlow(spec)', () => n.addFlow(h, 'x')],
    ['addFlow(no keys)', () => n.addFlow(h, { id: 1, proto: 'tcp' })],
    [
      'addFlow(short key)',
      () =>
        n.addFlow(h, {
          id: 1,
          proto: 'tcp',
          tx: { ...keys(1), encKey: Buffer.alloc(15) },
          rx: keys(2),
          pen: PEN,
          s: 1,
          vin: VIN,
          d: 2,
          ggr: GGR,
          t: 3,
        }),
    ],
    [
      'addFlow(bad address)',
      () =>
        n.addFlow(h, {
          id: 1,
          proto: 'tcp',
          tx: keys(1),
          rx: keys(2),
          pen: '1.2.3',
          s: 1,
          vin: VIN,
          d: 2,
          ggr: GGR,
          t: 3,
        }),
    ],
    [
      'addFlow(port range)',
      () =>
        n.addFlow(h, {
          id: 1,
          proto: 'tcp',
          tx: keys(1),
          rx: keys(2),
          pen: PEN,
          s: 70000,
          vin: VIN,
          d: 2,
          ggr: GGR,
          t: 3,
        }),
    ],
    [
      'addFlow(proto)',
      () =>
        n.addFlow(h, {
          id: 1,
          proto: 'sctp',
          tx: keys(1),
          rx: keys(2),
          pen: PEN,
          s: 1,
          vin: VIN,
          d: 2,
          ggr: GGR,
          t: 3,
        }),
    ],
    ['addFlow(id)', () => n.addFlow(h, { id: 1.5, proto: 'tcp' })],
    ['addFlow(keys not an object)', () => n.addFlow(h, { id: 1, proto: 'tcp', tx: 5, rx: keys(2) })],
    ['removeFlow(string id)', () => n.removeFlow(h, '1')],
    ['removeFlow(id)', () => n.removeFlow(h, -1)],
    ['failHeld(key)', () => n.failHeld(h, {}, 'rst')],
    ['failHeld(mode)', () => n.failHeld(h, { proto: 'tcp', src: PEN, sport: 1, dst: VIN, dport: 2 }, 'boom')],
    ['verdict(id)', () => n.verdict(h, 'x', true, undefined)],
    ['verdict(accept)', () => n.verdict(h, 1, 'yes', undefined)],
    ['verdict(replacement)', () => n.verdict(h, 1, true, 'bytes')],
    ['flowStats(id)', () => n.flowStats(h, NaN)],
    ['onEvents(fn)', () => n.onEvents(h, 42)],
    ['startNfqueue(opts)', () => n.startNfqueue(h, { queues: 'all' })],
    ['startNfqueue(queue)', () => n.startNfqueue(h, { queues: [{ num: 0, hook: 'up' }] })],
    ['stats(handle)', () => n.stats(42)],
  ];
  for (const [name, f] of bad) {
    t.throws(f, TypeError, name);
  }
});

t.test('wrong values that are not type errors throw plain Errors', async (t) => {
  const engine = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  engine.addReservation({ id: 1, proto: 'udp', t: 1000, pin: PIN, tx: keys(1), rx: keys(2) });
  t.throws(
    () => engine.addReservation({ id: 1, proto: 'udp', t: 1001, pin: PIN, tx: keys(1), rx: keys(2) }),
    /exists/,
  );
  t.throws(
    () => engine.addReservation({ id: 2, proto: 'udp', t: 1000, pin: PIN, tx: keys(1), rx: keys(2) }),
    /reserved/,
  );
  t.throws(() => engine.addFlow({} as never), /gateway uses addReservation/);
});

t.test('garbage packets are dropped and counted, never a crash', async (t) => {
  const engine = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  for (const len of [0, 1, 19, 20, 40, 1500]) {
    const r = engine.process(Buffer.alloc(len, 0x45), 'in');
    t.equal(r.verdict, 'drop');
  }
  t.throws(() => engine.process(Buffer.alloc(70000), 'in'), TypeError);
  t.equal(engine.stats().malformed, 6);
});
