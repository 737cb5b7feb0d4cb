// Deadlines (the gateway's timers): the earliest time, due keys, moving and removing keys, and
// many entries checked against a plain map walked in full (what the gateway did before).
import t from 'tap';
import { Deadlines } from '../../src/protocol/deadlines.ts';

t.test('next() is the earliest time set; due() lists what is due in the order first set', async (t) => {
  const d = new Deadlines<string>();
  t.equal(d.next(), null, 'empty: no deadline');
  t.same(d.due(1e12), []);
  d.set('c', 300);
  d.set('a', 100);
  d.set('b', 200);
  t.equal(d.next(), 100);
  t.equal(d.size, 3);
  t.same(d.due(99), [], 'nothing before the earliest');
  t.same(d.due(200), ['a', 'b'], 'a and b at 200');
  t.same(d.due(300), ['c', 'a', 'b'], 'first-set order, not time order');
  t.equal(d.size, 3, 'due() removes nothing');
});

t.test('moving a key earlier or later re-orders it; it keeps its first-set place in due()', async (t) => {
  const d = new Deadlines<string>();
  d.set('a', 100);
  d.set('b', 200);
  d.set('a', 500);
  t.equal(d.next(), 200, 'a moved later: b is first');
  t.equal(d.at('a'), 500);
  d.set('b', 50);
  t.equal(d.next(), 50, 'b moved earlier');
  d.set('b', 600);
  t.equal(d.next(), 500);
  t.same(d.due(600), ['a', 'b'], 'a was set first');
});

t.test('delete and set(key, null) cancel a key; deleting an unknown key is a no-op', async (t) => {
  const d = new Deadlines<object>();
  const [x, y, z] = [{}, {}, {}];
  d.set(x, 10);
  d.set(y, 20);
  d.set(z, 30);
  t.equal(d.delete(x), true);
  t.equal(d.delete(x), false, 'already gone');
  t.equal(d.has(x), false);
  t.equal(d.next(), 20);
  d.set(y, null);
  t.equal(d.next(), 30);
  t.same(d.due(100), [z]);
  d.clear();
  t.equal(d.next(), null);
  t.equal(d.size, 0);
});

t.test('equal times: the key set first comes first', async (t) => {
  const d = new Deadlines<number>();
  for (const k of [5, 3, 9, 1]) d.set(k, 1000);
  t.same(d.due(1000), [5, 3, 9, 1]);
  d.delete(5);
  t.same(d.due(1000), [3, 9, 1]);
});

t.test('many entries: random sets, moves and deletes agree with a full walk at every step', async (t) => {
  const seed = Number(process.env.DEADLINES_SEED ?? 20261129);
  t.comment(`seed ${seed}`);
  let state = seed >>> 0;
  const rnd = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: reproducible from the seed
    return state % n;
  };
  const d = new Deadlines<number>();
  const model = new Map<number, number>(); // key -> time, insertion-ordered like the heap's seq
  let mismatches = 0;
  for (let step = 0; step < 20_000; step++) {
    const key = rnd(2000);
    const op = rnd(10);
    if (op < 6) {
      const at = rnd(100_000);
      d.set(key, at);
      model.set(key, at); // a known key keeps its place, as in the heap
    } else if (d.delete(key) !== model.delete(key)) mismatches++;
    let min: number | null = null;
    for (const v of model.values()) if (min === null || v < min) min = v;
    if (d.next() !== min || d.size !== model.size) mismatches++;
    if (step % 1000 === 999) {
      const now = rnd(100_000);
      const want = [...model].filter(([, v]) => v <= now).map(([k]) => k);
      t.same(d.due(now), want, `due(${now}) at step ${step}`);
    }
  }
  t.equal(mismatches, 0, `next() and size matched the full walk at every step (seed ${seed})`);
  // drain in time order: each removal of the earliest leaves the next-earliest
  let last = -1;
  let ordered = true;
  while (d.size) {
    const at = d.next()!;
    if (at < last) ordered = false;
    last = at;
    const first = d.due(at).find((k) => d.at(k) === at)!;
    d.delete(first);
  }
  t.ok(ordered, 'removing the earliest repeatedly yields non-decreasing times');
});
