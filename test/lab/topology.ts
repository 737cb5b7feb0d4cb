// The lab's addresses and wiring: the network of ../shared/design-brief.md, on one machine.
//
//  [en1 192.168.1.10] --+                                 +-- [gw 203.0.113.1 | 10.0.0.1] --+-- in1 10.0.0.11
//  [en2 192.168.1.11] --+ home -- [hr 192.168.1.1 |       |                                  +-- in2 10.0.0.12
//                                  203.0.113.2] -- inet --+-- [attacker 203.0.113.66]         +-- dir 10.0.0.5
//                                                                                              (lan)
// "home", "inet" and "lan" are switches: a namespace holding one bridge, so a capture on the
// internet link (the inet bridge) sees everything that crosses the internet.

export type HostName = 'en1' | 'en2' | 'hr' | 'gw' | 'attacker' | 'in1' | 'in2' | 'dir';
export type SwitchName = 'home' | 'inet' | 'lan';

export const ADDR = {
  en1: '192.168.1.10',
  en2: '192.168.1.11',
  hrLan: '192.168.1.1',
  hrWan: '203.0.113.2',
  gwWan: '203.0.113.1',
  gwLan: '10.0.0.1',
  attacker: '203.0.113.66',
  in1: '10.0.0.11',
  in2: '10.0.0.12',
  dir: '10.0.0.5',
} as const;

export const NETS = { home: '192.168.1.0/24', inet: '203.0.113.0/24', lan: '10.0.0.0/24' } as const;

export interface Iface {
  /** Interface name inside the host's namespace. */
  name: string;
  switch: SwitchName;
  /** Bridge port name inside the switch's namespace. */
  port: string;
  addr: string;
}

export interface HostSpec {
  ifaces: Iface[];
  /** Default route, if any. The internet has no default route: it does not route private space. */
  gateway?: string;
  forward?: boolean;
  /** nameserver written to this host's /etc/netns/<ns>/resolv.conf. */
  nameserver: string;
}

export const HOSTS: Record<HostName, HostSpec> = {
  en1: {
    ifaces: [{ name: 'eth0', switch: 'home', port: 'p-en1', addr: ADDR.en1 }],
    gateway: ADDR.hrLan,
    nameserver: ADDR.gwWan,
  },
  en2: {
    ifaces: [{ name: 'eth0', switch: 'home', port: 'p-en2', addr: ADDR.en2 }],
    gateway: ADDR.hrLan,
    nameserver: ADDR.gwWan,
  },
  hr: {
    ifaces: [
      { name: 'lan0', switch: 'home', port: 'p-hr', addr: ADDR.hrLan },
      { name: 'wan0', switch: 'inet', port: 'p-hr', addr: ADDR.hrWan },
    ],
    forward: true,
    nameserver: '127.0.0.1',
  },
  gw: {
    ifaces: [
      { name: 'wan0', switch: 'inet', port: 'p-gw', addr: ADDR.gwWan },
      { name: 'lan0', switch: 'lan', port: 'p-gw', addr: ADDR.gwLan },
    ],
    forward: true,
    nameserver: '127.0.0.1',
  },
  attacker: {
    ifaces: [{ name: 'eth0', switch: 'inet', port: 'p-att', addr: ADDR.attacker }],
    nameserver: ADDR.gwWan,
  },
  in1: {
    ifaces: [{ name: 'eth0', switch: 'lan', port: 'p-in1', addr: ADDR.in1 }],
    gateway: ADDR.gwLan,
    nameserver: ADDR.dir,
  },
  in2: {
    ifaces: [{ name: 'eth0', switch: 'lan', port: 'p-in2', addr: ADDR.in2 }],
    gateway: ADDR.gwLan,
    nameserver: ADDR.dir,
  },
  dir: {
    ifaces: [{ name: 'eth0', switch: 'lan', port: 'p-dir', addr: ADDR.dir }],
    gateway: ADDR.gwLan,
    nameserver: '127.0.0.1',
  },
};

export const SWITCHES: SwitchName[] = ['home', 'inet', 'lan'];
