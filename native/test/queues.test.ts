// Queues per side and the port spread (native/lib/queues.ts) and the rules built on them
// (native/lib/rules.ts). No root: the kernel's side is in nfqueue.test.ts.
import t from 'tap';
import { agentRules, gatewayRules, queueIndexOfPort, queueLayout, type Rule } from '../index.ts';
import { spreadMatches, spreadValues } from '../lib/queues.ts';

const GGR = '198.51.100.1';
const PGR = '10.1.0.1';

t.test('queueLayout: one queue per CPU, at most 4, never so many that the sides meet', async (t) => {
  t.same(
    queueLayout([0, 8], 0, 2),
    [
      [0, 1],
      [8, 9],
    ],
    'two CPUs: two per side',
  );
  t.same(
    queueLayout([0, 8], 0, 64),
    [
      [0, 1, 2, 3],
      [8, 9, 10, 11],
    ],
    'capped at 4',
  );
  t.same(queueLayout([0, 1], 0, 16), [[0], [1]], 'adjacent bases (the old default) keep one per side');
  t.same(
    queueLayout([20, 10], 3, 1),
    [
      [20, 21, 22],
      [10, 11, 12],
    ],
    'an explicit count whatever the CPUs',
  );
  t.throws(() => queueLayout([0, 1], 2, 2), /overlap/, 'explicit count whose numbers meet');
  t.throws(() => queueLayout([3, 3], 1, 2), /different/);
  t.throws(() => queueLayout([0, 16], 9, 2), /0 \(automatic\) to 8/);
  t.throws(() => queueLayout([0, 65535], 2, 2), /65535/);
});

t.test('the port spread is even for consecutive ports and for even ports (Linux connect())', async (t) => {
  for (const n of [2, 3, 4, 5, 8]) {
    for (const step of [1, 2]) {
      const counts = new Array<number>(n).fill(0);
      const count = 64 * n;
      for (let i = 0; i < count; i++) counts[queueIndexOfPort(40000 + i * step, n)]!++;
      const even = count / n;
      t.ok(
        counts.every((c) => c >= even * 0.6 && c <= even * 1.4),
        `n=${n}, step ${step}: ${counts.join(' / ')}`,
      );
    }
    // Four flows on consecutive even ports (iperf3 -P 4) never all land on one queue.
    for (let p = 40000; p < 40064; p += 2) {
      const qs = new Set([0, 2, 4, 6].map((d) => queueIndexOfPort(p + d, n)));
      if (qs.size < 2) t.fail(`n=${n}: ports ${p}..${p + 6} all on one queue`);
    }
  }
  t.equal(queueIndexOfPort(12345, 1), 0, 'one queue: always 0');
});

t.test('the u32 value lists are the spread function, each value on exactly one queue', async (t) => {
  for (const n of [2, 3, 4, 6, 8]) {
    const bits = n <= 4 ? 4 : 6;
    const owner = new Map<number, number>();
    for (let k = 1; k < n; k++)
      for (const list of spreadValues(k, n)) {
        t.ok(list.split(',').length <= 10, `n=${n} k=${k}: at most 10 ranges per u32 test`);
        for (const part of list.split(',')) {
          const [lo, hi] = part.split(':').map(Number);
          for (let v = lo!; v <= (hi ?? lo!); v++) {
            if (owner.has(v)) t.fail(`value ${v} on two queues`);
            owner.set(v, k);
          }
        }
      }
    for (let v = 0; v < 1 << bits; v++) {
      const want = queueIndexOfPort(v, n);
      if ((owner.get(v) ?? 0) !== want) t.fail(`n=${n}: low bits ${v} -> ${owner.get(v) ?? 0}, want ${want}`);
    }
    t.pass(`n=${n}: rules and function agree on all ${1 << bits} values`);
  }
  const [m] = spreadMatches(1, 2, 'dport');
  t.same(m!.slice(0, 3), ['-m', 'u32', '--u32'], 'a u32 match');
  t.match(
    m![3],
    /^4&0x3FFF=0 && 6&0xFF=6,17 && 0>>22&0x3C@0&0xf=/,
    'whole TCP/UDP packets, by destination port',
  );
  t.match(spreadMatches(1, 2, 'sport')[0]![3], /@0>>16&0xf=/, 'or by source port');
});

const nfq = (r: Rule) =>
  r.args.includes('NFQUEUE') ? Number(r.args[r.args.indexOf('--queue-num') + 1]) : null;
const spreadBy = (r: Rule) => r.args.find((a) => a.includes('@0>>16&') || a.includes('@0&'));

t.test(
  'gateway rules with 2 queues per side: each TCP/UDP rule is spread by destination port, then a catch-all',
  async (t) => {
    const rules = gatewayRules({
      ggr: GGR,
      pgr: PGR,
      ports: '20000:29999',
      inQueue: [0, 1],
      outQueue: [8, 9],
      wan: 'wan0',
      lan: 'lan0',
    });
    const queued = rules.filter((r) => nfq(r) !== null);
    t.notOk(
      queued.some((r) => r.args.includes('--queue-bypass')),
      'fail closed: no --queue-bypass',
    );
    for (const [dst, qs] of [
      [GGR, [0, 1]],
      [PGR, [8, 9]],
    ] as const) {
      for (const p of ['tcp', 'udp']) {
        const mine = queued.filter((r) => r.args.includes(dst) && r.args.includes(p));
        t.same(
          mine.map(nfq),
          [qs[1], qs[0]],
          `${dst} ${p}: the spread rule, then the rest to the first queue`,
        );
        t.match(spreadBy(mine[0]!), /@0&0xf=/, 'spread by the destination port (t, or the PGR port)');
        t.equal(spreadBy(mine[1]!), undefined, 'the catch-all has no spread');
        t.same(
          mine[1]!.args.slice(0, mine[1]!.args.indexOf('-m', 8)),
          mine[0]!.args.slice(0, mine[1]!.args.indexOf('-m', 8)),
          'same base match',
        );
      }
      const icmp = queued.filter((r) => r.args.includes(dst) && r.args.includes('icmp'));
      t.same(icmp.map(nfq), [qs[0]], 'ICMP to the first queue');
    }
    const one = gatewayRules({
      ggr: GGR,
      pgr: PGR,
      ports: '20000:29999',
      inQueue: 0,
      outQueue: 1,
      wan: 'wan0',
      lan: 'lan0',
    });
    t.notOk(
      one.some((r) => spreadBy(r)),
      'one queue: no spread rule',
    );
    t.equal(one.length, 8);
  },
);

t.test(
  'agent rules with 3 queues per side: spread by the source port both ways; DNS and ICMP on the first queue',
  async (t) => {
    const rules = agentRules({
      vinNet: '100.64.0.0/16',
      ggr: GGR,
      ports: '20000:29999',
      outQueue: [0, 1, 2],
      inQueue: [8, 9, 10],
      dns: { zones: ['corp.example'], resolvers: [] },
    });
    const out = rules.filter((r) => r.chain === 'OUTPUT' && r.table === 'raw');
    t.same(out.map(nfq), [1, 2, 0], 'VIN traffic: queues 1 and 2 by spread, the rest to 0');
    t.ok(
      out.slice(0, 2).every((r) => /@0>>16&0xf=/.test(spreadBy(r) ?? '')),
      "by the application's source port",
    );
    const inTcp = rules.filter(
      (r) => r.chain === 'PREROUTING' && r.table === 'raw' && r.args.includes('tcp'),
    );
    t.same(inTcp.map(nfq), [9, 10, 8]);
    t.ok(
      inTcp.slice(0, 2).every((r) => /@0>>16&0xf=/.test(spreadBy(r) ?? '')),
      "by GGR's port t",
    );
    const dns = rules.filter((r) => r.table === 'mangle' && nfq(r) !== null);
    t.same(dns.map(nfq), [0, 8], 'DNS queries and answers on the first queues');
    t.equal(
      rules.filter((r) => r.args.includes('--queue-bypass')).length,
      1,
      'bypass only on the watched DNS queries',
    );
  },
);
