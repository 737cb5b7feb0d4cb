import t from 'tap';
import { constantTimeEqual, encode, sealMessage, verifyMessage } from '../../src/protocol/index.ts';

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
