// iptables rules that send packets to the engine's NFQUEUE queues. No --queue-bypass on what must
// be translated: with no engine bound to the queue the kernel drops it (fail closed). The one
// exception is the agent's view of outbound DNS queries, which it only records.
import { execFileSync } from 'node:child_process';
import { spreadMatches } from './queues.ts';

export interface Rule {
  table: 'raw' | 'mangle';
  chain: string;
  args: string[];
}

const tag = (name: string) => ['-m', 'comment', '--comment', `gsra:${name}`];

/** One queue number or a side's queues (native/lib/queues.ts): flows spread over them, each pinned. */
export type Queues = number | readonly number[];
const list = (q: Queues): readonly number[] => (typeof q === 'number' ? [q] : q);
const nfq = (n: number) => ['-j', 'NFQUEUE', '--queue-num', String(n)];

/**
 * The rules that queue what `match` takes to `queues`: with one queue, one rule; with n, a rule
 * per queue 1 … n-1 that adds the port spread (queues.ts: TCP/UDP, not a fragment, by `port`),
 * then the rule to queue 0 for the rest. Nothing matched by `match` escapes the queues.
 */
function spread(
  table: Rule['table'],
  chain: string,
  match: string[],
  c: string[],
  queues: Queues,
  port: 'sport' | 'dport',
): Rule[] {
  const qs = list(queues);
  const r: Rule[] = [];
  for (let k = 1; k < qs.length; k++)
    for (const m of spreadMatches(k, qs.length, port))
      r.push({ table, chain, args: [...match, ...m, ...c, ...nfq(qs[k]!)] });
  r.push({ table, chain, args: [...match, ...c, ...nfq(qs[0]!)] });
  return r;
}

/** The conntrack mark bit the agent's DNS rules set on connections that carry a query for one of its zones. */
export const DNS_CONNMARK = '0x1000000/0x1000000';

/** A DNS name as it appears on the wire, ending with the root label: iptables string match hex. */
export function dnsWireName(zone: string): string {
  const labels = zone.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.some((l) => l.length < 1 || l.length > 63 || !/^[a-z0-9-]+$/.test(l)))
    throw new Error(`not a DNS zone: ${zone}`);
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `|${labels.map((l) => `${hex(l.length)}|${l}|`).join('')}00|`;
}

/**
 * Agent rules. Only what the agent must see is queued; everything else — DNS for other names,
 * ICMP that is not about a translated flow — passes the PC untouched, also while the agent is down.
 * - raw OUTPUT: to the VIN range -> outQueue (never --queue-bypass: with the agent down, VIN
 *   traffic is dropped, never sent untranslated).
 * - raw PREROUTING: TCP/UDP from GGR's port range -> inQueue; ICMP errors quoting a packet to
 *   GGR's port range (u32 match on the quoted header) -> inQueue.
 * - with `dns`: mangle OUTPUT marks the conntrack entry of a UDP query to a resolver (any when
 *   `resolvers` is empty) whose question ends in one of `zones` (string match on the wire name,
 *   case-insensitive, anchored by the root label) and queues such queries to outQueue WITH
 *   --queue-bypass (the agent records them when it runs; they leave anyway when it does not);
 *   mangle PREROUTING queues the answers on marked connections to inQueue (no bypass: with the
 *   agent down, an answer for an internal name is dropped, so no application connects to GGR in
 *   clear).
 */
export function agentRules(o: {
  vinNet: string;
  ggr: string;
  /** GGR's reserved port range, 'lo:hi'. */
  ports: string;
  /** With several queues per side, flows spread by the application's source port (out) and GGR's port t (in). */
  outQueue: Queues;
  inQueue: Queues;
  dns?: { zones: string[]; resolvers: string[] };
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'agent');
  // Everything that is not spread (ICMP, DNS) goes to each side's first queue.
  const q = (n: Queues) => nfq(list(n)[0]!);
  const [lo, hi] = o.ports.split(':');
  const ggrHex = `0x${o.ggr
    .split('.')
    .map((x) => Number(x).toString(16).padStart(2, '0'))
    .join('')}`;
  // From the ICMP header (@ skips the outer IP header): type is an error (unreachable, source
  // quench, redirect, time exceeded, parameter problem); the quoted packet went to GGR (offset
  // 8 + 16) over TCP or UDP (8 + 9), to a port in GGR's range (@ skips the quoted IP header).
  const quotesGgr = [
    '0>>22&0x3C@0>>24=3:5,11:12',
    `0>>22&0x3C@24=${ggrHex}`,
    '0>>22&0x3C@16>>16&0xFF=6,17',
    `0>>22&0x3C@8>>22&0x3C@8&0xFFFF=${lo}:${hi ?? lo}`,
  ].join(' && ');
  const r: Rule[] = [
    ...spread('raw', 'OUTPUT', ['-d', o.vinNet], c, o.outQueue, 'sport'),
    ...spread('raw', 'PREROUTING', ['-s', o.ggr, '-p', 'tcp', '--sport', o.ports], c, o.inQueue, 'sport'),
    ...spread('raw', 'PREROUTING', ['-s', o.ggr, '-p', 'udp', '--sport', o.ports], c, o.inQueue, 'sport'),
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-p', 'icmp', '-m', 'u32', '--u32', quotesGgr, ...c, ...q(o.inQueue)],
    },
  ];
  if (o.dns) {
    const to = o.dns.resolvers.length ? o.dns.resolvers : [undefined];
    for (const resolver of to)
      for (const zone of o.dns.zones)
        r.push({
          table: 'mangle',
          chain: 'OUTPUT',
          args: [
            ...(resolver ? ['-d', resolver] : []),
            ...['-p', 'udp', '--dport', '53', '-m', 'string', '--algo', 'bm', '--icase'],
            ...['--hex-string', dnsWireName(zone), '--from', '40', '--to', '300'],
            ...c,
            ...['-j', 'CONNMARK', '--set-xmark', DNS_CONNMARK],
          ],
        });
    const marked = ['-m', 'connmark', '--mark', DNS_CONNMARK];
    r.push(
      {
        table: 'mangle',
        chain: 'OUTPUT',
        args: ['-p', 'udp', '--dport', '53', ...marked, ...c, ...q(o.outQueue), '--queue-bypass'],
      },
      {
        table: 'mangle',
        chain: 'PREROUTING',
        args: ['-p', 'udp', '--sport', '53', ...marked, ...c, ...q(o.inQueue)],
      },
    );
  }
  return r;
}

/**
 * Gateway rules (raw PREROUTING). First, strict reverse-path filtering on both interfaces
 * (xt_rpfilter): a packet whose source address the routing table would not answer through the
 * interface it arrived on is dropped — a LAN address from the internet, an internet address from
 * the LAN, one of the gateway's own addresses from anywhere. Then: to GGR's port range (and ICMP
 * to GGR) arriving on the internet interface `wan` -> inQueue; to PGR's port range (and ICMP to
 * PGR) arriving on the LAN interface `lan` -> outQueue. A translated packet is not filtered again
 * (a queue verdict resumes after the raw table), which is why the kernel's own `rp_filter` must
 * stay loose: strict, it would refuse the translated packets, whose source is the gateway's
 * address of the other side (docs/gateway.md). Translated packets are routed with a local source
 * address, so the interfaces need net.ipv4.conf.<if>.accept_local=1.
 */
export function gatewayRules(o: {
  ggr: string;
  pgr: string;
  ports: string;
  /** With several queues per side, flows spread by the destination port: GGR's t (in), PGR's port (out). */
  inQueue: Queues;
  outQueue: Queues;
  /** The internet interface (GGR's side). */
  wan: string;
  /** The LAN interface (PGR's side). */
  lan: string;
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'gateway');
  const r: Rule[] = [o.wan, o.lan].map((i) => ({
    table: 'raw',
    chain: 'PREROUTING',
    args: ['-i', i, '-m', 'rpfilter', '--invert', ...c, '-j', 'DROP'],
  }));
  for (const s of [
    { dst: o.ggr, iface: o.wan, queue: o.inQueue },
    { dst: o.pgr, iface: o.lan, queue: o.outQueue },
  ]) {
    for (const p of ['tcp', 'udp'])
      r.push(
        ...spread(
          'raw',
          'PREROUTING',
          ['-i', s.iface, '-d', s.dst, '-p', p, '--dport', o.ports],
          c,
          s.queue,
          'dport',
        ),
      );
    r.push({
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-i', s.iface, '-d', s.dst, '-p', 'icmp', ...c, ...nfq(list(s.queue)[0]!)],
    });
  }
  return r;
}

/** One iptables call (in `netns` if given); what it printed. */
function iptables(netns: string | undefined, args: string[]): string {
  const argv = netns ? ['netns', 'exec', netns, 'iptables', '-w', ...args] : ['-w', ...args];
  return execFileSync(netns ? 'ip' : 'iptables', argv, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Appends the rules (all or nothing: on error the ones already added are removed). */
export function installRules(rules: Rule[], opts: { netns?: string } = {}): void {
  const done: Rule[] = [];
  try {
    for (const r of rules) {
      iptables(opts.netns, ['-t', r.table, '-A', r.chain, ...r.args]);
      done.push(r);
    }
  } catch (e) {
    removeRules(done, opts);
    throw e;
  }
}

/**
 * Makes the chains hold exactly `rules` among the rules with their tags (`gsra:<name>`), without a
 * moment in which a wanted rule is missing: a daemon that restarts after a crash takes over the
 * rules it finds (a moment without them would pass packets untranslated, or let the gateway's own
 * stack reset a flow a restart carries on), appends the missing ones and only then deletes the
 * ones it does not want (a crashed daemon's under another configuration, e.g. to queues this one
 * does not read). Rules of other tags are never touched. On error the rules added by this call are
 * removed again.
 *
 * iptables prints a rule in its own canonical form, not as it was given, so the wanted rules are
 * put once in a scratch chain (never jumped to, so no packet sees it) to learn that form.
 */
export function ensureRules(rules: Rule[], opts: { netns?: string } = {}): void {
  const tags = new Set(rules.map((r) => commentOf(r.args)).filter((c): c is string => c !== undefined));
  const chains = new Map<string, Rule[]>();
  for (const r of rules) {
    const key = `${r.table} ${r.chain}`;
    chains.set(key, [...(chains.get(key) ?? []), r]);
  }
  const added: Rule[] = [];
  const stale: Rule[] = [];
  try {
    for (const wanted of chains.values()) {
      const { table, chain } = wanted[0]!;
      const forms = canonicalForms(opts.netns, table, wanted);
      const present = listChain(opts.netns, table, chain);
      const there = new Set(present.map((args) => JSON.stringify(args)));
      wanted.forEach((r, i) => {
        if (there.has(forms[i]!)) return;
        iptables(opts.netns, ['-t', table, '-A', chain, ...r.args]);
        added.push(r);
      });
      const keep = new Set(forms);
      for (const args of present) {
        const c = commentOf(args);
        if (c !== undefined && tags.has(c) && !keep.has(JSON.stringify(args)))
          stale.push({ table, chain, args });
      }
    }
  } catch (e) {
    removeRules(added, opts);
    throw e;
  }
  for (const r of stale) iptables(opts.netns, ['-t', r.table, '-D', r.chain, ...r.args]);
}

const commentOf = (args: readonly string[]): string | undefined => {
  const i = args.indexOf('--comment');
  return i >= 0 ? args[i + 1] : undefined;
};

/** Splits a line of `iptables -S` into arguments: it double-quotes those with spaces or specials. */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line))
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** A chain's rules as `iptables -S` prints them, each split into arguments. */
function listChain(netns: string | undefined, table: string, chain: string): string[][] {
  return iptables(netns, ['-t', table, '-S', chain])
    .split('\n')
    .filter((l) => l.startsWith(`-A ${chain} `))
    .map((l) => splitRuleLine(l.slice(`-A ${chain} `.length)));
}

/** Each rule's canonical form (as listChain gives it, JSON), in order, learnt in a scratch chain. */
function canonicalForms(netns: string | undefined, table: Rule['table'], rules: Rule[]): string[] {
  const scratch = `gsra-canon-${process.pid}`.slice(0, 28);
  try {
    iptables(netns, ['-t', table, '-N', scratch]);
    for (const r of rules) iptables(netns, ['-t', table, '-A', scratch, ...r.args]);
    return listChain(netns, table, scratch).map((args) => JSON.stringify(args));
  } finally {
    try {
      iptables(netns, ['-t', table, '-F', scratch]);
      iptables(netns, ['-t', table, '-X', scratch]);
    } catch {
      // not made
    }
  }
}

/** Deletes the rules; missing rules are ignored. */
export function removeRules(rules: Rule[], opts: { netns?: string } = {}): void {
  for (const r of [...rules].reverse()) {
    try {
      iptables(opts.netns, ['-t', r.table, '-D', r.chain, ...r.args]);
    } catch {
      // already gone
    }
  }
}
