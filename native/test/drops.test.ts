// Refused packets for operators (native/lib/drops.ts): summary lines that lose nothing, and the
// counter sync the daemons' /metrics use.
import t from 'tap';
import { DropSummary, syncCounter, warnDropLines, type DropLine } from '../index.ts';

function summary(counts: Record<string, number>, intervalMs = 1000) {
  let now = 0;
  const lines: DropLine[] = [];
  const s = new DropSummary(
    () => ({ ...counts }),
    (l) => lines.push(l),
    intervalMs,
    () => now,
  );
  return { s, lines, counts, at: (ms: number) => (now = ms) };
}

t.test('a flush logs the drops since the last line, by reason, with their total', async (t) => {
  const x = summary({ 'bad-mac': 0, replay: 0 });
  x.s.start();
  x.counts['bad-mac'] = 7;
  x.counts.replay = 2;
  x.at(4000);
  x.s.flush();
  t.same(x.lines, [{ dropped: { 'bad-mac': 7, replay: 2 }, total: 9, periodMs: 4000 }]);
  x.s.stop();
});

t.test('no line when nothing was dropped', async (t) => {
  const x = summary({ 'bad-mac': 3 });
  x.s.start();
  x.s.flush();
  x.s.stop();
  t.same(x.lines, [], 'drops counted before start() are not reported again');
});

t.test('a trailing burst is logged by the timer without any later drop', async (t) => {
  const counts: Record<string, number> = { closed: 0 };
  const lines: DropLine[] = [];
  const s = new DropSummary(
    () => ({ ...counts }),
    (l) => lines.push(l),
    50,
  );
  s.start();
  counts.closed = 5;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(lines.length, 1, 'one line, though no drop came after the burst');
  t.same(lines[0]!.dropped, { closed: 5 });
  s.stop();
});

t.test('stop() flushes what is pending', async (t) => {
  const x = summary({ 'icmp-invalid': 0 }, 60_000);
  x.s.start();
  x.counts['icmp-invalid'] = 1;
  x.s.stop();
  t.equal(x.lines.length, 1);
});

t.test('syncCounter sets one series per reason', async (t) => {
  const seen: [string, number][] = [];
  let resets = 0;
  syncCounter(
    { reset: () => resets++, inc: (l, v) => seen.push([l.reason, v]) },
    { 'bad-mac': 4, replay: 0 },
  );
  t.equal(resets, 1);
  t.same(seen, [
    ['bad-mac', 4],
    ['replay', 0],
  ]);
});

t.test("warnDropLines makes the daemons' line: 'packets dropped', counts, period in seconds", async (t) => {
  const said: unknown[] = [];
  warnDropLines((m, f) => said.push([m, f]))({ dropped: { 'bad-mac': 2 }, total: 2, periodMs: 5000 });
  t.same(said, [['packets dropped', { dropped: { 'bad-mac': 2 }, total: 2, periodSec: 5 }]]);
});
