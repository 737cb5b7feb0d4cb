// Group policy from LDAP: who may reach which internal host. The gateway keeps a snapshot of
// every GSRA group (members, hosts, keys), refreshed every `refreshMs` and on demand (SIGHUP).
// If the directory cannot be read, the last snapshot serves for at most `maxStaleMs`; after that
// every request is refused (fail closed) until a refresh succeeds.
import type { Logger } from '@gsra/common';
import type { DirectoryClient, GsraGroup, GsraHost } from '@gsra/ldap';

export type RefusalReason = 'unknown-user' | 'revoked-user' | 'not-in-group' | 'unknown-in' | 'internal';

export type Decision =
  { allow: true; group: GsraGroup; host: GsraHost } | { allow: false; reason: RefusalReason; detail: string };

export interface PolicyUser {
  dn: string;
  /** The id the user logged in with. */
  id: string;
  /** The per-user secret (challenge-response). Never logged. */
  secret: Buffer;
  /** GSRA groups the user is in, with their keys. */
  groups: GsraGroup[];
  /** Was in a GSRA group since the gateway started, and is in none now. */
  revoked: boolean;
}

interface Snapshot {
  at: number;
  groups: Map<string, GsraGroup>;
  /** IN name (lower case) -> groups listing it. */
  hostGroups: Map<string, GsraGroup[]>;
  /** user DN (lower case) -> groups. */
  userGroups: Map<string, GsraGroup[]>;
}

export interface RefreshResult {
  groups: number;
  users: number;
  hosts: number;
  /** Users (DN) who were in some group before this refresh and are in none now. */
  revoked: string[];
  /** Users (DN) who lost at least one group membership. */
  changed: string[];
}

export interface DirectoryPolicyOptions {
  client: DirectoryClient;
  bindDn: string;
  password: string;
  refreshMs: number;
  /** Serve a stale snapshot at most this long when LDAP fails (default 5 × refreshMs). */
  maxStaleMs?: number;
  logger: Logger;
  now?: () => number;
}

const lc = (s: string) => s.toLowerCase();

export class DirectoryPolicy {
  private snap: Snapshot | undefined;
  private users = new Map<string, PolicyUser | null>();
  private everMember = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<RefreshResult> | undefined;
  private readonly now: () => number;
  private readonly maxStaleMs: number;

  constructor(private opts: DirectoryPolicyOptions) {
    this.now = opts.now ?? Date.now;
    this.maxStaleMs = opts.maxStaleMs ?? 5 * opts.refreshMs;
  }

  /** Age of the snapshot in ms (Infinity before the first successful refresh). */
  get age(): number {
    return this.snap ? this.now() - this.snap.at : Infinity;
  }

  get usable(): boolean {
    return this.age <= this.maxStaleMs;
  }

  /** Read everything from the directory; concurrent callers share one refresh. */
  refresh(): Promise<RefreshResult> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<RefreshResult> {
    const { client, bindDn, password, logger } = this.opts;
    await client.bindService(bindDn, password);
    const groups = await client.allGroups();
    const snap: Snapshot = {
      at: this.now(),
      groups: new Map(),
      hostGroups: new Map(),
      userGroups: new Map(),
    };
    for (const g of groups) {
      snap.groups.set(g.name, g);
      for (const h of g.hosts) {
        const k = lc(h.name);
        snap.hostGroups.set(k, [...(snap.hostGroups.get(k) ?? []), g]);
      }
      for (const m of g.members) {
        const k = lc(m);
        snap.userGroups.set(k, [...(snap.userGroups.get(k) ?? []), g]);
      }
    }
    const old = this.snap;
    const changed: string[] = [];
    const revoked: string[] = [];
    if (old) {
      for (const [dn, oldGroups] of old.userGroups) {
        const now = new Set((snap.userGroups.get(dn) ?? []).map((g) => g.name));
        if (oldGroups.some((g) => !now.has(g.name))) changed.push(dn);
        if (now.size === 0) revoked.push(dn);
      }
    }
    for (const dn of snap.userGroups.keys()) this.everMember.add(dn);
    // Users already looked up are read again now, against the new snapshot, so that a user with a
    // live session is never "unknown" for a moment after a refresh.
    const users = new Map<string, PolicyUser | null>();
    for (const id of this.users.keys()) users.set(id, await this.readUser(id, snap));
    this.snap = snap;
    this.users = users;
    const result = {
      groups: snap.groups.size,
      users: snap.userGroups.size,
      hosts: snap.hostGroups.size,
      revoked,
      changed,
    };
    logger.info('policy refreshed', {
      groups: result.groups,
      users: result.users,
      hosts: result.hosts,
      revoked: revoked.length,
    });
    return result;
  }

  /** Refresh every refreshMs until stop(); failures are logged and the old snapshot kept. */
  start(onRefresh?: (r: RefreshResult) => void): void {
    this.stop();
    this.timer = setInterval(() => {
      this.refresh().then(onRefresh, (e: Error) =>
        this.opts.logger.warn('policy refresh failed', {
          reason: e.message,
          snapshotAgeMs: this.age,
          failClosed: !this.usable,
        }),
      );
    }, this.opts.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Is this name one of the internal hosts any group lists? (For the DNS responder.) */
  knownHost(name: string): boolean {
    return this.snap?.hostGroups.has(lc(name.replace(/\.$/, ''))) ?? false;
  }

  hostNames(): string[] {
    return this.snap ? [...this.snap.hostGroups.keys()] : [];
  }

  group(name: string): GsraGroup | undefined {
    return this.snap?.groups.get(name);
  }

  groupsOf(userDn: string): GsraGroup[] {
    return this.snap?.userGroups.get(lc(userDn)) ?? [];
  }

  /**
   * A user by login id, with secret and groups; null when the directory does not know the id or
   * the user was never in a GSRA group (a user removed from every group comes back `revoked`).
   * Cached, and re-read at every refresh.
   */
  async lookupUser(id: string): Promise<PolicyUser | null> {
    if (!this.usable) throw new Error('directory unavailable (policy snapshot too old)');
    const key = lc(id);
    if (this.users.has(key)) return this.users.get(key)!;
    const user = await this.readUser(key, this.snap!);
    this.users.set(key, user);
    return user;
  }

  private async readUser(id: string, snap: Snapshot): Promise<PolicyUser | null> {
    const { client } = this.opts;
    try {
      const found = await client.findUser(id);
      const groups = snap.userGroups.get(lc(found.dn)) ?? [];
      const revoked = groups.length === 0 && this.everMember.has(lc(found.dn));
      if (groups.length === 0 && !revoked) return null;
      return { dn: found.dn, id, secret: await client.userSecret(found.dn), groups, revoked };
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'no-such-user' || code === 'no-secret') return null;
      throw e;
    }
  }

  /** The cached lookup for id: a user, null (known not to be usable), or undefined (not looked up yet). */
  cachedUser(id: string): PolicyUser | null | undefined {
    return this.users.get(lc(id));
  }

  /** Why a user id is unknown: never a member, or removed since. */
  unknownReason(userDn: string | undefined): 'unknown-user' | 'revoked-user' {
    return userDn && this.everMember.has(lc(userDn)) ? 'revoked-user' : 'unknown-user';
  }

  /** May `userDn`, speaking for `groupName`, reach the internal host `inName`? */
  decide(userDn: string, groupName: string, inName: string): Decision {
    if (!this.usable) return { allow: false, reason: 'internal', detail: 'directory unavailable' };
    const snap = this.snap!;
    const hostGroups = snap.hostGroups.get(lc(inName.replace(/\.$/, '')));
    if (!hostGroups)
      return { allow: false, reason: 'unknown-in', detail: `${inName} is not a GSRA internal host` };
    const mine = this.groupsOf(userDn);
    if (mine.length === 0) {
      return { allow: false, reason: this.unknownReason(userDn), detail: `${userDn} is in no GSRA group` };
    }
    const group = mine.find((g) => g.name === groupName);
    if (!group) return { allow: false, reason: 'not-in-group', detail: `not a member of ${groupName}` };
    if (!hostGroups.some((g) => g.name === groupName)) {
      return { allow: false, reason: 'not-in-group', detail: `${groupName} may not reach ${inName}` };
    }
    const host = group.hosts.find((h) => lc(h.name) === lc(inName.replace(/\.$/, '')))!;
    return { allow: true, group, host };
  }
}
