// A daemon that starts over the rules a crashed one left (ensureRules) keeps its closed door and
// ends with exactly its own rules: those of another queue layout are removed,
// those of other tags are not touched. Real iptables in a namespace of its own (root).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { agentRules, ensureRules, gatewayRules, queueLayout, splitRuleLine, type Rule } from '../index.ts';

t.test('splitRuleLine: iptables -S quoting', async (t) => {
  t.same(splitRuleLine('-p udp -m string --hex-string "|03|foo|00|" --algo bm -j ACCEPT'), [
    '-p',
    'udp',
    '-m',
    'string',
    '--hex-string',
    '|03|foo|00|',
    '--algo',
    'bm',
    '-j',
    'ACCEPT',
  ]);
  t.same(splitRuleLine('-m comment --comment "a \\"b\\" c" -j DROP'), [
    '-m',
    'comment',
    '--comment',
    'a "b" c',
    '-j',
    'DROP',
  ]);
});

const isRoot = process.getuid?.() === 0;
t.test(
  'ensureRules over another layout: the stale queue rules go, the door stays closed',
  { skip: !isRoot && 'needs root (CI runs as root)' },
  async (t) => {
    const ns = `gsrarules-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    t.teardown(() => execFileSync('ip', ['netns', 'del', ns]));
    const ipt = (...args: string[]) =>
      execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args], { encoding: 'utf8' });
    const rules = (perSide: number): Rule[] => {
      const [inQ, outQ] = queueLayout([0, 8], perSide, 2);
      return gatewayRules({
        ggr: '198.51.100.1',
        pgr: '10.1.0.1',
        ports: '40000:40999',
        inQueue: inQ!,
        outQueue: outQ!,
        wan: 'wan0',
        lan: 'lan0',
      });
    };
    const tagged = (): string[] =>
      ['raw', 'mangle'].flatMap((table) =>
        ipt('-t', table, '-S')
          .split('\n')
          .filter((l) => l.includes('gsra:gateway'))
          .map((l) => `${table} ${l}`),
      );
    const queuesIn = (lines: string[]) =>
      [...new Set(lines.flatMap((l) => [...l.matchAll(/--queue-num (\d+)/g)].map((m) => Number(m[1]))))].sort(
        (a, b) => a - b,
      );
    // An operator's own rule with another tag, in the same chain: never ours to remove.
    ipt(
      '-t',
      'raw',
      '-A',
      'PREROUTING',
      '-i',
      'wan0',
      '-m',
      'comment',
      '--comment',
      'operator:keep',
      '-j',
      'ACCEPT',
    );

    const four = rules(4);
    ensureRules(four, { netns: ns });
    const first = tagged();
    t.equal(first.length, four.length, 'a fresh start installs every rule once');
    t.same(queuesIn(first), [0, 1, 2, 3, 8, 9, 10, 11], 'four queues per side');

    ensureRules(four, { netns: ns });
    t.same(tagged(), first, 'the same layout again changes nothing (a restart after a crash)');

    const one = rules(1);
    ensureRules(one, { netns: ns });
    const after = tagged();
    t.equal(after.length, one.length, 'only the new layout’s rules are left');
    t.same(queuesIn(after), [0, 8], 'no rule sends to a queue the new layout does not read');
    t.match(ipt('-t', 'raw', '-S', 'PREROUTING'), /operator:keep/, 'the operator’s rule is still there');
    t.notMatch(ipt('-t', 'raw', '-S'), /gsra-canon/, 'no scratch chain is left');
  },
);

t.test(
  "the agent's rules (string and u32 matches) are their own canonical form: a restart keeps every one",
  { skip: !isRoot && 'needs root (CI runs as root)' },
  async (t) => {
    const ns = `gsrarules-a-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    t.teardown(() => execFileSync('ip', ['netns', 'del', ns]));
    const tagged = (): string[] =>
      ['raw', 'mangle'].flatMap((table) =>
        execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', table, '-S'], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.includes('gsra:agent')),
      );
    const [outQ, inQ] = queueLayout([0, 8], 2, 2);
    const rules = agentRules({
      vinNet: '100.64.0.0/16',
      ggr: '198.51.100.1',
      ports: '40000:40999',
      outQueue: outQ!,
      inQueue: inQ!,
      dns: { zones: ['corp.example', 'Other-Zone.test'], resolvers: ['192.0.2.53'] },
    });
    ensureRules(rules, { netns: ns });
    const first = tagged();
    t.equal(first.length, rules.length, 'every rule installed once');
    t.ok(
      first.some((l) => l.includes('--hex-string')),
      'the DNS string matches are among them',
    );
    ensureRules(rules, { netns: ns });
    t.same(tagged(), first, 'taken over as they are: none removed, none added');
  },
);
