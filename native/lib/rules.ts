// iptables rules that send packets to the engine's NFQUEUE queues. Never --queue-bypass: with no
// engine bound to the queue the kernel drops (fail closed).
import { execFileSync } from 'node:child_process';

export interface Rule {
  table: 'raw' | 'mangle';
  chain: string;
  args: string[];
}

const tag = (name: string) => ['-m', 'comment', '--comment', `gsra:${name}`];

/**
 * Agent rules (raw table, before conntrack): outbound to the VIN range -> outQueue; inbound
 * from GGR's port range and all ICMP -> inQueue; optionally DNS answers -> dnsQueue (punted).
 */
export function agentRules(o: {
  vinNet: string;
  ggr: string;
  /** GGR's reserved port range, 'lo:hi'. */
  ports: string;
  outQueue: number;
  inQueue: number;
  dnsQueue?: number;
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'agent');
  const q = (n: number) => ['-j', 'NFQUEUE', '--queue-num', String(n)];
  const r: Rule[] = [
    { table: 'raw', chain: 'OUTPUT', args: ['-d', o.vinNet, ...c, ...q(o.outQueue)] },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-s', o.ggr, '-p', 'tcp', '--sport', o.ports, ...c, ...q(o.inQueue)],
    },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-s', o.ggr, '-p', 'udp', '--sport', o.ports, ...c, ...q(o.inQueue)],
    },
    // ICMP errors from any router may quote a translated packet (PMTUD); others pass unchanged.
    { table: 'raw', chain: 'PREROUTING', args: ['-p', 'icmp', ...c, ...q(o.inQueue)] },
  ];
  if (o.dnsQueue !== undefined) {
    r.push({
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-p', 'udp', '--sport', '53', ...c, ...q(o.dnsQueue)],
    });
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
  inQueue: number;
  outQueue: number;
  /** The internet interface (GGR's side). */
  wan: string;
  /** The LAN interface (PGR's side). */
  lan: string;
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'gateway');
  const q = (n: number) => ['-j', 'NFQUEUE', '--queue-num', String(n)];
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
      r.push({
        table: 'raw',
        chain: 'PREROUTING',
        args: ['-i', s.iface, '-d', s.dst, '-p', p, '--dport', o.ports, ...c, ...q(s.queue)],
      });
    r.push({
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-i', s.iface, '-d', s.dst, '-p', 'icmp', ...c, ...q(s.queue)],
    });
  }
  return r;
}

function iptables(netns: string | undefined, args: string[]): void {
  const argv = netns ? ['netns', 'exec', netns, 'iptables', '-w', ...args] : ['-w', ...args];
  execFileSync(netns ? 'ip' : 'iptables', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
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
