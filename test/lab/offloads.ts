// Segmentation and receive offloads (TSO, GSO, GRO) on every veth of a running lab: both ends of
// each link (the host's interface and its port on the switch). With TSO/GSO off nothing bigger
// than one MTU-sized segment crosses a link: the per-segment path a real NIC gives a router.
// (Lab.create({ offloads: false }) sets them off at build time, on the host ends only.)
import { HOSTS } from './topology.ts';
import type { Lab } from './lab.ts';

export interface Offloads {
  tso: boolean;
  gso: boolean;
  gro: boolean;
}

export interface Veth {
  node: Parameters<Lab['ns']>[0];
  dev: string;
}

/** Every veth end of the lab: the hosts' interfaces and the switches' ports. */
export function labVeths(lab: Lab): Veth[] {
  return lab.hosts.flatMap((h) =>
    HOSTS[h].ifaces.flatMap((i) => [
      { node: h, dev: i.name },
      { node: i.switch, dev: i.port },
    ]),
  );
}

const FEATURE = {
  tso: 'tcp-segmentation-offload',
  gso: 'generic-segmentation-offload',
  gro: 'generic-receive-offload',
} as const;

/** Parses `ethtool -k <dev>` (the three features this file is about). */
export function parseOffloads(text: string): Offloads {
  const get = (name: string) => {
    const m = new RegExp(`^${name}: (on|off)`, 'm').exec(text);
    if (!m) throw new Error(`ethtool -k: no ${name} line`);
    return m[1] === 'on';
  };
  return { tso: get(FEATURE.tso), gso: get(FEATURE.gso), gro: get(FEATURE.gro) };
}

export async function readOffloads(lab: Lab): Promise<(Veth & Offloads)[]> {
  return Promise.all(
    labVeths(lab).map(async (v) => ({
      ...v,
      ...parseOffloads((await lab.exec(v.node, ['ethtool', '-k', v.dev], { timeoutMs: 10_000 })).stdout),
    })),
  );
}

/** Sets the given features on every veth end, then reads them back and throws if one did not take. */
export async function setOffloads(lab: Lab, want: Partial<Offloads>): Promise<void> {
  const args = (Object.keys(want) as (keyof Offloads)[]).flatMap((k) => [k, want[k] ? 'on' : 'off']);
  if (!args.length) return;
  await Promise.all(
    labVeths(lab).map((v) => lab.exec(v.node, ['ethtool', '-K', v.dev, ...args], { timeoutMs: 10_000 })),
  );
  for (const s of await readOffloads(lab)) {
    for (const k of Object.keys(want) as (keyof Offloads)[]) {
      if (s[k] !== want[k])
        throw new Error(`${s.node}/${s.dev}: ${k} is ${s[k] ? 'on' : 'off'} after setting it`);
    }
  }
}
