// A directory of `users` GSRA users for the gateway cost figures, answered from memory: the
// gateway's real DirectoryPolicy reads it through the DirectoryClient methods it calls
// (bindService, allGroups, gsraUsers, flavorHint), so the figures time the gateway's own code,
// not slapd. Every answer is built afresh, as an LDAP read would be (the policy keeps what it
// needs; the rest is garbage). Secrets and the group key are derived from the index, so the
// driver (another process) can log any user in without being told its secret.
import { createHash } from 'node:crypto';
import type { DirectoryClient, GsraGroup, GsraUserEntry } from '@gsra/ldap';

export const BASE_DN = 'dc=corp,dc=example';
export const GROUP = 'sales';
export const IN_NAME = 'intra1.corp.example';
export const IN_ADDR = '10.0.0.11';

const h = (s: string) => createHash('sha256').update(s).digest();
export const uid = (i: number) => `u${String(i).padStart(7, '0')}`;
export const userDn = (i: number) => `uid=${uid(i)},ou=people,${BASE_DN}`;
export const userSecret = (i: number) => h(`gsra-bench-user-${i}`);
export const GROUP_KEY = { version: 1, key: h('gsra-bench-group-key') };

export class BenchDirectory {
  readonly baseDn = BASE_DN;
  readonly flavor = 'openldap' as const;
  /** Users left out of the group (to make a refresh change something). */
  readonly removed = new Set<number>();
  constructor(readonly users: number) {}

  async bindService(): Promise<void> {}
  async flavorHint(): Promise<string | undefined> {
    return undefined;
  }
  async close(): Promise<void> {}

  async allGroups(): Promise<GsraGroup[]> {
    const members: string[] = [];
    for (let i = 0; i < this.users; i++) if (!this.removed.has(i)) members.push(userDn(i));
    return [
      {
        name: GROUP,
        dn: `cn=${GROUP},ou=groups,${BASE_DN}`,
        keys: [{ version: GROUP_KEY.version, key: Buffer.from(GROUP_KEY.key) }],
        hosts: [{ name: IN_NAME, address: IN_ADDR }],
        members,
      },
    ];
  }

  async gsraUsers(): Promise<GsraUserEntry[]> {
    return Array.from({ length: this.users }, (_, i) => ({
      dn: userDn(i),
      uid: uid(i),
      secret: userSecret(i),
      state: { usable: true as const },
    }));
  }

  /** The shape DirectoryPolicy and GatewayDaemon take (they call only the methods above). */
  asClient(): DirectoryClient {
    return this as unknown as DirectoryClient;
  }
}
