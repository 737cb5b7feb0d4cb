// The session channel both sides use (docs/protocol.md §4.1, §10): numbering and MACs, the replay
// window, the timestamp window, the answer cache and the requests kept for retransmission.
import t from 'tap';
import {
  decode,
  ReplayWindow,
  SessionChannel,
  verifyMessage,
  type SessionMessage,
} from '../../src/protocol/index.ts';

const ID = Buffer.alloc(8, 5);
const A_TO_B = Buffer.alloc(32, 1);
const B_TO_A = Buffer.alloc(32, 2);
/** Two ends of one session: a sends with A_TO_B, b receives with it. */
const pair = (cache = 2) => ({
  a: new SessionChannel<string>(ID, { send: A_TO_B, receive: B_TO_A }, cache),
  b: new SessionChannel<string>(ID, { send: B_TO_A, receive: A_TO_B }, cache),
});

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

t.test('seal numbers the messages 1, 2, 3 and MACs them with the sender key', async (t) => {
  const { a, b } = pair();
  const seqs = [1, 2, 3].map(() => {
    const data = a.seal({ type: 'KEEPALIVE', ack: 0n }, 1000);
    t.ok(b.authentic(data), 'the peer verifies it');
    t.ok(verifyMessage(data, A_TO_B));
    t.notOk(a.authentic(data), 'the sender’s own receive key does not (no reflection)');
    return (decode(data) as SessionMessage).seq;
  });
  t.same(seqs, [1n, 2n, 3n]);
});

t.test('admit: a message is new once, then a duplicate', async (t) => {
  const { a, b } = pair();
  const m = decode(a.seal({ type: 'KEEPALIVE', ack: 0n }, 1000)) as SessionMessage;
  t.equal(b.admit(m, 1000), 'new');
  t.equal(b.admit(m, 1000), 'duplicate');
  t.equal(b.highestSeen, 1n);
});

t.test('admit: a timestamp more than 60 s from the clock is stale and not recorded', async (t) => {
  const { a, b } = pair();
  const m = decode(a.seal({ type: 'KEEPALIVE', ack: 0n }, 1000)) as SessionMessage;
  t.equal(b.admit(m, 1000 + 60_001), 'stale-timestamp');
  t.equal(b.admit(m, 1000 - 60_001), 'stale-timestamp');
  t.equal(b.admit(m, 1000 + 60_000), 'new', 'at 60 s exactly still fresh, and only now recorded');
});

t.test('a request stays pending, retransmitted, until the answer settles it', async (t) => {
  const { a } = pair();
  const data = a.request({ type: 'KEEPALIVE', ack: 0n }, 1000, 'ka', 1000);
  t.equal(a.nextDeadline(), 1250);
  t.ok(a.poll(1250).resend[0]!.item.data.equals(data), 'the same bytes again');
  t.equal(a.settle(0n), undefined, 'ack 0 answers nothing');
  t.equal(a.settle(1n)?.info, 'ka');
  t.equal(a.nextDeadline(), null, 'nothing pending');
});

t.test('the answer cache keeps the last answers only', async (t) => {
  const { b } = pair(2);
  for (const seq of [1n, 2n, 3n]) b.answer(seq, Buffer.from([Number(seq)]));
  t.equal(b.answered(1n), undefined, 'the oldest is gone');
  t.same(b.answered(3n), Buffer.from([3]));
});
