// A port-forward on the gateway host, as an office edge without GSRA would publish a server:
// GGR:port (from the internet side) -> an internal host, by DNAT. Each forward is tagged so its
// traffic can be counted (`conntrack --ctstate DNAT` in FORWARD, both directions) and is removed
// with the lab.
import { ADDR } from './topology.ts';
import type { Lab } from './lab.ts';

export interface PortForward {
  proto: 'tcp' | 'udp' | 'icmp';
  /** The public port (absent for icmp: echo requests to GGR go to `to`). */
  port?: number;
  /** Internal address (and port; default the same port). */
  to: string;
  toPort?: number;
}

/**
 * Adds the DNAT rules (nat PREROUTING, from wan0 to GGR). With `countTag`, also one counting rule
 * in filter FORWARD (no target: it only counts) per internal address, for the connections this
 * gateway DNATed from GGR to it (other forwards to other hosts, e.g. LDAPS, are not counted), read back with `iptables -L FORWARD -v -n -x`.
 */
export async function addPortForwards(lab: Lab, fwds: PortForward[], countTag?: string): Promise<void> {
  const ipt = (args: string[]) => lab.exec('gw', ['iptables', '-w', ...args], { timeoutMs: 10_000 });
  for (const f of fwds) {
    const match = ['-i', 'wan0', '-d', ADDR.gwWan, '-p', f.proto];
    if (f.proto === 'icmp') match.push('--icmp-type', 'echo-request');
    else if (f.port) match.push('--dport', String(f.port));
    else throw new Error(`a ${f.proto} port-forward needs a port`);
    const to = f.proto === 'icmp' ? f.to : `${f.to}:${f.toPort ?? f.port}`;
    await ipt(['-t', 'nat', '-A', 'PREROUTING', ...match, '-j', 'DNAT', '--to-destination', to]);
  }
  if (countTag) {
    for (const to of new Set(fwds.map((f) => f.to))) {
      await ipt([
        '-t',
        'filter',
        '-A',
        'FORWARD',
        '-m',
        'conntrack',
        '--ctstate',
        'DNAT',
        '--ctorigdst',
        ADDR.gwWan,
        '--ctreplsrc',
        to,
        '-m',
        'comment',
        '--comment',
        countTag,
      ]);
    }
  }
}
