// Replay protection must not cost liveness: a genuine retransmission and an attacker's replay are
// the same bytes, so the engines pass data the receiving end already acknowledged as a bare header
// (docs/pccom.md §4.4), and the receiving TCP must still answer it with an ACK when its earlier ACK
// was lost. Real losses in the lab (iptables on alice's home router): her ACKs of a download lost
// for 1.5 s, intra1's ACKs of her upload lost for 1.5 s (both paced by the sender, so the window
// stays open and what is retransmitted is data the other end already has), and (npm run
// test:long) random loss both ways with the statistic match. Every transfer must complete, intact.
import t from 'tap';
import { join } from 'node:path';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import { makeRandomFile } from '../lab/services.ts';
import { IN1 } from '../e2e/gsra-lab.ts';
import { LONG, STREAM, delta, startAttackLab, wireFlow, type AttackLab } from './attack-lab.ts';

const PORT = 7002;

/** Drops what `rule` matches on alice's home router for `ms`. */
async function lose(a: AttackLab, rule: string[], ms: number): Promise<void> {
  await a.lab.exec('hr', ['iptables', '-I', 'FORWARD', ...rule, '-j', 'DROP']);
  await new Promise((r) => setTimeout(r, ms));
  await a.lab.exec('hr', ['iptables', '-D', 'FORWARD', ...rule, '-j', 'DROP']);
}

t.test('transfers survive lost acknowledgments', async (t) => {
  const a = await startAttackLab();
  t.teardown(() => a.stop());
  const server = a.lab.spawn('in1', 'stream', ['python3', STREAM, 'server', ADDR.in1, String(PORT)]);
  await waitFor('the stream server', () => server.log.includes('listening'), 10_000);

  await t.test(
    'alice’s ACKs of a download lost for 1.5 s: intra1’s retransmissions reach her bare and she acknowledges again',
    async (t) => {
      // intra1 paces the download itself: alice's window stays open, so what it retransmits
      // during the loss is data she already has.
      const en0 = await a.agentDrops();
      const net = await a.captureInternet();
      const n = (LONG ? 32 : 6) << 20;
      const down = a.lab.exec(
        'en1',
        ['python3', STREAM, 'download', IN1, String(PORT), String(n), String(2 << 20)],
        {
          timeoutMs: 120_000,
        },
      );
      await new Promise((r) => setTimeout(r, 1200));
      const f = wireFlow(net.peek());
      await lose(
        a,
        ['-i', 'lan0', '-s', ADDR.en1, '-d', ADDR.gwWan, '-p', 'tcp', '--dport', String(f.t)],
        1500,
      );
      const [, got, announced] = (await down).stdout.trim().split(' ');
      t.equal(got, announced, 'the download arrives intact (its sha256 is the one intra1 announced)');
      await net.stop();
      const en = delta(en0, await a.agentDrops());
      t.ok(
        (en['old-data'] ?? 0) > 0,
        `data alice already had reached her bare (agent old-data +${en['old-data']})`,
      );
    },
  );

  await t.test(
    'intra1’s ACKs of an upload lost for 1.5 s: alice’s retransmissions reach intra1 bare and it acknowledges again',
    async (t) => {
      const file = join(a.lab.dir, 'upload.bin');
      const sha = makeRandomFile(file, (LONG ? 32 : 6) << 20);
      const gw0 = await a.gatewayDrops();
      const net = await a.captureInternet();
      const up = a.lab.exec('en1', ['python3', STREAM, 'upload', IN1, String(PORT), file, String(2 << 20)], {
        timeoutMs: 120_000,
      });
      await new Promise((r) => setTimeout(r, 1200));
      const mine = net.peek().filter((p) => p.proto === 6 && p.dst === ADDR.gwWan && p.payload.length > 1000);
      const t_ = mine.at(-1)!.dport!;
      await lose(
        a,
        ['-i', 'wan0', '-s', ADDR.gwWan, '-d', ADDR.en1, '-p', 'tcp', '--sport', String(t_)],
        1500,
      );
      t.equal((await up).stdout.trim(), `sha256 ${sha}`, 'intra1 received the file intact');
      await net.stop();
      const gw = delta(gw0, await a.gatewayDrops());
      t.ok(
        (gw['old-data'] ?? 0) > 0,
        `data intra1 already had reached it bare (gateway old-data +${gw['old-data']})`,
      );
    },
  );

  if (LONG)
    await t.test('random loss both ways (iptables statistic): a download completes intact', async (t) => {
      const rules = [
        ['-i', 'lan0', '-s', ADDR.en1, '-d', ADDR.gwWan, '-p', 'tcp'],
        ['-i', 'wan0', '-s', ADDR.gwWan, '-d', ADDR.en1, '-p', 'tcp'],
      ].map((r) => [
        'FORWARD',
        ...r,
        '-m',
        'statistic',
        '--mode',
        'random',
        '--probability',
        '0.03',
        '-j',
        'DROP',
      ]);
      for (const r of rules) await a.lab.exec('hr', ['iptables', '-I', ...r]);
      t.teardown(async () => {
        for (const r of rules) await a.lab.exec('hr', ['iptables', '-D', ...r], { allowFail: true });
      });
      t.equal(await a.download().done, a.big.sha, 'the download completes with the right sha256');
    });
});
