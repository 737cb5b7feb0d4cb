import t from 'tap';
import {
  ReplayWindow,
  constantTimeEqual,
  encode,
  sealMessage,
  verifyMessage,
} from '../../src/protocol/index.ts';

t.test('replay window: accepts each seq once, reordering within 64, refuses older', async (t) => {
  const w = new ReplayWindow();
  t.notOk(w.check(0n), 'seq 0 never valid');
  for (const s of [1n, 3n, 2n, 10n]) {
    t.ok(w.check(s), `first ${s}`);
    w.accept(s);
    t.notOk(w.check(s), `second ${s}`);
  }
  t.ok(w.check(5n), 'gap inside the window');
  w.accept(100n);
  t.notOk(w.check(36n), '64 below the highest: too old');
  t.ok(w.check(37n), '63 below: still accepted');
  w.accept(37n);
  t.notOk(w.check(37n));
  w.accept(1000n);
  t.notOk(w.check(100n), 'shift beyond the window clears everything older');
  t.ok(w.check(999n));
  t.equal(w.highestSeen, 1000n);
  w.accept(0xffffffffffffffffn);
  t.notOk(w.check(0xffffffffffffffffn));
});

t.test('constant-time compare and MAC verification', async (t) => {
  t.ok(constantTimeEqual(Buffer.from('ab'), Buffer.from('ab')));
  t.notOk(constantTimeEqual(Buffer.from('ab'), Buffer.from('abc')), 'different lengths: false, no throw');
  const key = Buffer.alloc(32, 7);
  const m = sealMessage(
    encode({ type: 'ACK', sessionId: Buffer.alloc(8), seq: 1n, ack: 1n, timestamp: 5 }),
    key,
  );
  t.ok(verifyMessage(m, key));
  t.notOk(verifyMessage(m, Buffer.alloc(32, 8)), 'other key');
  t.notOk(verifyMessage(Buffer.alloc(3), key), 'short input');
  for (let i = 0; i < m.length; i++) {
    const x = Buffer.from(m);
    x[i]! ^= 0x80;
    if (verifyMessage(x, key)) t.fail(`bit flip at ${i} not detected`);
  }
});
