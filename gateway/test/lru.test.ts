// The bounded LRU with TTL that remembers unknown user ids.
import t from 'tap';
import { LruTtl } from '../src/lru.ts';

t.test('never more than max entries; least recently used evicted first', async (t) => {
  const m = new LruTtl<string, number>(3, 1000, () => 0);
  for (let i = 0; i < 10_000; i++) m.set(`k${i}`, i);
  t.equal(m.size, 3);
  t.equal(m.get('k9999'), 9999);
  m.set('a', 1);
  m.get('k9998'); // refreshed: k9997 is now the oldest
  m.set('b', 2);
  t.equal(m.get('k9997'), undefined);
  t.equal(m.get('k9998'), 9998);
});

t.test('entries expire ttlMs after they were written', async (t) => {
  let now = 0;
  const m = new LruTtl<string, number>(10, 1000, () => now);
  m.set('x', 1);
  now = 999;
  t.equal(m.get('x'), 1);
  now = 1000;
  t.equal(m.get('x'), undefined);
  t.equal(m.size, 0, 'an expired entry is dropped when read');
  t.throws(() => new LruTtl(0, 1));
});
