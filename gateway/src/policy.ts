// Group policy from LDAP: who may reach which internal host. The gateway keeps a snapshot of
// every GSRA group (members, hosts, keys) and every GSRA user (ids, secret, account state),
// read in a few bounded, paged searches every `refreshMs` and on demand (SIGHUP). Every user
// question is answered from that snapshot: no request, authenticated or not, ever makes the
// gateway search the directory, and the refresh costs the same whatever ids agents send.
// If the directory cannot be read, the last snapshot serves for at most `maxStaleMs` after the
// moment it was read; after that every request is refused `directory-unavailable` (fail closed)
// until a refresh succeeds.
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger, protocol } from '@gsra/common';
import {
  UserIndex,
  dnsDomainOf,
  normalizeDn,
  type DirectoryClient,
  type GsraGroup,
  type GsraHost,
  type GsraUserEntry,
} from '@gsra/ldap';
import { LruTtl } from './lru.ts';

export type RefusalReason =
  | 'unknown-user'
  | 'revoked-user'
  | 'account-disabled'
  | 'not-in-group'
  | 'unknown-in'
  | 'directory-unavailable';

export type Decision =
  { allow: true; group: GsraGroup; host: GsraHost } | { allow: false; reason: RefusalReason; detail: string };

export interface PolicyUser {
  dn: string;
  /** The directory's own id (OpenLDAP uid, AD sAMAccountName): the canonical id. */
  id: string;
  uid?: string;
  upn?: string;
  /** The per-user secret (challenge-response). Never logged. */
  secret: Buffer;
  /** GSRA groups the user is in, with their keys. */
  groups: GsraGroup[];
  /** Why the account may not be used: in no GSRA group, or disabled / locked / expired. */
  refusal?: { reason: 'revoked-user' | 'account-disabled'; detail: string };
}

export type UserVerdict =
  | { found: true; user: PolicyUser }
  | { found: false; reason: 'unknown-user' | 'directory-unavailable'; detail: string };

interface Snapshot {
  /** When its reading started: the data is at least this fresh. */
  at: number;
  groups: Map<string, GsraGroup>;
  /** IN name (lower case) -> groups listing it. */
  hostGroups: Map<string, GsraGroup[]>;
  /** member DN (normalized) -> groups. */
  userGroups: Map<string, GsraGroup[]>;
  /** GSRA users with a secret, by every id form. */
  users: UserIndex<PolicyUser>;
  /** normalized DN -> user. */
  byDn: Map<string, PolicyUser>;
}

export interface RefreshResult {
  groups: number;
  /** Distinct members of GSRA groups. */
  users: number;
  hosts: number;
  /** GSRA users (accounts with a GSRA secret) read. */
  accounts: number;
  /** Members of some GSRA group whose account is disabled, locked or expired. */
  disabled: number;
  /** Members of GSRA groups without a GSRA secret (they cannot log in). */
  withoutSecret: number;
  /** Users (DN, normalized) who were in some group before this refresh and are in none now. */
  revoked: string[];
  /** Users (DN, normalized) whose flows must be decided again: lost a group, disabled, gone. */
  changed: string[];
  /** How long the refresh took (ms). */
  durationMs: number;
}

export interface DirectoryPolicyOptions {
  client: DirectoryClient;
  bindDn: string;
  password: string;
  refreshMs: number;
  /** Serve a stale snapshot at most this long when LDAP fails (default 5 × refreshMs). */
  maxStaleMs?: number;
  /** AD: the agents' upnSuffix; a bare id also names the user whose UPN is id@upnSuffix. */
  upnSuffix?: string;
  /**
   * At a refresh, what happens to the live (mapped) flows of an account that became disabled,
   * locked or expired: 'cut' (default) ends them, 'keep' lets them run to their natural end.
   * New flows and logins are refused either way.
   */
  liveFlows?: 'cut' | 'keep';
  /** Memory of unknown ids (for the log): at most `max` ids, each `ttlMs` (default 4096, 10 min). */
  unknownIds?: { max: number; ttlMs: number };
  logger: Logger;
  now?: () => number;
}

/** Logged individually per minute; beyond that, unknown ids are only counted (flood). */
const UNKNOWN_LOG_PER_MIN = 10;
/** The protocol carries refusal texts of at most 200 bytes. */
const clamp = (s: string) =>
  Buffer.byteLength(s) <= 200 ? s : Buffer.from(s).subarray(0, 197).toString() + '...';
const lc = (s: string) => s.toLowerCase();

export class DirectoryPolicy {
  private snap: Snapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<RefreshResult> | undefined;
  private readonly now: () => number;
  private readonly maxStaleMs: number;
  private readonly decoyKey = randomBytes(32);
  /** Unknown ids seen recently (bounded): each is logged once per TTL, floods only counted. */
  readonly unknownIds: LruTtl<string, number>;
  /** Look-ups of ids the snapshot does not know, since start. */
  unknownLookups = 0;
  private unknownLog = { minute: 0, logged: 0, suppressed: 0 };
  private lastWarned = '';

  constructor(private opts: DirectoryPolicyOptions) {
    this.now = opts.now ?? Date.now;
    this.maxStaleMs = opts.maxStaleMs ?? 5 * opts.refreshMs;
    const u = opts.unknownIds ?? { max: 4096, ttlMs: 600_000 };
    this.unknownIds = new LruTtl(u.max, u.ttlMs, this.now);
  }

  /** Age of the snapshot in ms, from the moment it was read (Infinity before the first refresh). */
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
    const at = this.now();
    const groups = await client.allGroups();
    const accounts = await client.gsraUsers(at);
    const snap = this.build(at, groups, accounts);
    const old = this.snap;
    const changed: string[] = [];
    const revoked: string[] = [];
    if (old) {
      for (const [dn, oldGroups] of old.userGroups) {
        const nowIn = new Set((snap.userGroups.get(dn) ?? []).map((g) => g.name));
        const before = old.byDn.get(dn);
        const after = snap.byDn.get(dn);
        const lostGroup = oldGroups.some((g) => !nowIn.has(g.name));
        const disabled = after?.refusal?.reason === 'account-disabled' && !before?.refusal;
        if (lostGroup || disabled || (before && !after)) changed.push(dn);
        if (nowIn.size === 0) revoked.push(dn);
      }
    }
    this.snap = snap;
    let withoutSecret = 0;
    let disabled = 0;
    for (const dn of snap.userGroups.keys()) {
      const u = snap.byDn.get(dn);
      if (!u) withoutSecret++;
      else if (u.refusal?.reason === 'account-disabled') disabled++;
    }
    const result: RefreshResult = {
      groups: snap.groups.size,
      users: snap.userGroups.size,
      hosts: snap.hostGroups.size,
      accounts: snap.byDn.size,
      disabled,
      withoutSecret,
      revoked,
      changed,
      durationMs: this.now() - at,
    };
    logger.info('policy refreshed', {
      groups: result.groups,
      users: result.users,
      hosts: result.hosts,
      accounts: result.accounts,
      disabled,
      withoutSecret,
      revoked: revoked.length,
      changed: changed.length,
      durationMs: result.durationMs,
    });
    await this.warnAboutData(snap, groups.length, accounts.length, withoutSecret);
    return result;
  }

  private build(at: number, groups: GsraGroup[], accounts: GsraUserEntry[]): Snapshot {
    const { client } = this.opts;
    const snap: Omit<Snapshot, 'users'> = {
      at,
      groups: new Map(),
      hostGroups: new Map(),
      userGroups: new Map(),
      byDn: new Map(),
    };
    for (const g of groups) {
      snap.groups.set(g.name, g);
      for (const h of g.hosts) {
        const k = lc(h.name);
        snap.hostGroups.set(k, [...(snap.hostGroups.get(k) ?? []), g]);
      }
      for (const m of g.members) {
        const k = normalizeDn(m);
        snap.userGroups.set(k, [...(snap.userGroups.get(k) ?? []), g]);
      }
    }
    for (const a of accounts) {
      if (!a.secret) continue; // cannot prove anything: as good as unknown
      const dn = normalizeDn(a.dn);
      const id = a.uid ?? a.dn;
      const mine = snap.userGroups.get(dn) ?? [];
      const u: PolicyUser = { dn: a.dn, id, secret: a.secret, groups: mine };
      if (a.uid !== undefined) u.uid = a.uid;
      if (a.upn !== undefined) u.upn = a.upn;
      if (!a.state.usable) {
        u.refusal = { reason: 'account-disabled', detail: clamp(`${id}: ${a.state.detail}; ask IT`) };
      } else if (mine.length === 0) {
        u.refusal = {
          reason: 'revoked-user',
          detail: clamp(`${id} is in no GSRA group; ask IT to add the account to one`),
        };
      }
      snap.byDn.set(dn, u);
    }
    const domain = dnsDomainOf(client.baseDn);
    const users = new UserIndex(snap.byDn.values(), {
      flavor: client.flavor,
      ...(client.flavor === 'ad' && domain ? { dnsDomains: [domain] } : {}),
      ...(this.opts.upnSuffix ? { upnSuffix: this.opts.upnSuffix } : {}),
    });
    return { ...snap, users };
  }

  /** Operator warnings about the directory's data, logged when they change (not every refresh). */
  private async warnAboutData(
    snap: Snapshot,
    groups: number,
    accounts: number,
    withoutSecret: number,
  ): Promise<void> {
    const problems: Record<string, unknown> = {};
    if (snap.users.ambiguous.length) problems.ambiguousIds = snap.users.ambiguous.slice(0, 20);
    if (withoutSecret)
      problems.membersWithoutSecret = [...snap.userGroups.keys()]
        .filter((dn) => !snap.byDn.has(dn))
        .slice(0, 20);
    if (groups === 0 && accounts === 0) {
      const hint = await this.opts.client.flavorHint();
      problems.empty = hint ?? 'no GSRA group and no GSRA user found under the configured base DN';
    }
    const key = JSON.stringify(problems);
    if (key === this.lastWarned) return;
    this.lastWarned = key;
    if (key !== '{}') this.opts.logger.warn('directory data needs attention', problems);
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
    return this.snap?.userGroups.get(normalizeDn(userDn)) ?? [];
  }

  /** What an agent hears while the policy cannot be used. */
  private unavailableDetail(): string {
    if (!this.snap)
      return 'the gateway has not been able to read the office directory (LDAP) since it started; help desk: check the LDAP server and the gateway link to it';
    const sec = Math.round(this.age / 1000);
    const since = sec < 120 ? `${sec} s` : `${Math.round(sec / 60)} min`;
    return clamp(
      `the gateway has not been able to read the office directory (LDAP) for ${since}; help desk: check the LDAP server and the gateway link to it`,
    );
  }

  /**
   * The user any form of `id` names (uid / sAMAccountName, any case, DN, mail / UPN, DOMAIN\name,
   * bare id + upnSuffix), from the snapshot. Never does I/O. Unknown ids are remembered in a
   * bounded LRU for the log, and never looked up in the directory.
   */
  resolveUser(id: string): UserVerdict {
    if (!this.usable)
      return { found: false, reason: 'directory-unavailable', detail: this.unavailableDetail() };
    const u = this.snap!.users.resolve(id);
    if (u) return { found: true, user: u };
    this.noteUnknown(id);
    return { found: false, reason: 'unknown-user', detail: 'no such GSRA user' };
  }

  private noteUnknown(id: string): void {
    this.unknownLookups++;
    const key = lc(id.trim()).slice(0, 256);
    const seen = this.unknownIds.get(key);
    this.unknownIds.set(key, (seen ?? 0) + 1);
    if (seen !== undefined) return;
    const minute = Math.floor(this.now() / 60_000);
    const l = this.unknownLog;
    if (minute !== l.minute) {
      if (l.suppressed)
        this.opts.logger.warn('many unknown user ids (enumeration or flood?)', {
          suppressed: l.suppressed,
          tracked: this.unknownIds.size,
        });
      this.unknownLog = { minute, logged: 0, suppressed: 0 };
    }
    if (this.unknownLog.logged++ < UNKNOWN_LOG_PER_MIN)
      this.opts.logger.info('user id not in the directory', { user: key.slice(0, 64) });
    else this.unknownLog.suppressed++;
  }

  /**
   * GatewayControl's user look-up (GatewayPolicy.lookupUser). An unknown id gets a decoy entry
   * whose secret nobody knows: its proof fails exactly like a wrong secret (`bad-proof`), so
   * the gateway never tells an unauthenticated sender which ids exist.
   */
  lookupUser(id: string): protocol.DirectoryUser | protocol.UserLookupRefusal {
    const v = this.resolveUser(id);
    if (!v.found) {
      if (v.reason === 'directory-unavailable') return { refused: v.reason, text: v.detail };
      return {
        userDn: '',
        id,
        secret: createHmac('sha256', this.decoyKey).update(lc(id)).digest(),
        refusal: { reason: 'unknown-user', text: `no user ${id}`.slice(0, 200) },
        groups: [],
      };
    }
    const u = v.user;
    return {
      userDn: u.dn,
      id: u.id,
      secret: u.secret,
      ...(u.refusal ? { refusal: { reason: u.refusal.reason, text: u.refusal.detail } } : {}),
      groups: u.groups.map((g) => ({
        name: g.name,
        keys: g.keys.map((k) => ({ version: k.version, key: k.key, notAfter: k.notAfter?.getTime() })),
      })),
    };
  }

  /** GatewayControl's reach question (GatewayPolicy.mayReach), by the session's canonical id. */
  mayReach(userId: string, group: string, inName: string): protocol.ReachDecision {
    const v = this.resolveUser(userId);
    if (!v.found) return { allow: false, reason: v.reason, text: v.detail };
    const d = this.decide(v.user.dn, group, inName);
    return d.allow
      ? { allow: true, pin: d.host.address }
      : { allow: false, reason: d.reason, text: d.detail };
  }

  /** recheckAll's keep filter: with liveFlows 'keep', a disabled account's mapped flows run on. */
  keepLiveFlow(r: { mapping?: unknown }, reason: string): boolean {
    return this.opts.liveFlows === 'keep' && reason === 'account-disabled' && r.mapping !== undefined;
  }

  /** May `userDn`, speaking for `groupName`, reach the internal host `inName`? */
  decide(userDn: string, groupName: string, inName: string): Decision {
    if (!this.usable)
      return { allow: false, reason: 'directory-unavailable', detail: this.unavailableDetail() };
    const snap = this.snap!;
    const user = snap.byDn.get(normalizeDn(userDn));
    if (user?.refusal?.reason === 'account-disabled')
      return { allow: false, reason: 'account-disabled', detail: user.refusal.detail };
    const hostGroups = snap.hostGroups.get(lc(inName.replace(/\.$/, '')));
    if (!hostGroups)
      return { allow: false, reason: 'unknown-in', detail: `${inName} is not a GSRA internal host` };
    const mine = this.groupsOf(userDn);
    if (mine.length === 0) {
      return user
        ? {
            allow: false,
            reason: 'revoked-user',
            detail: user.refusal?.detail ?? `${user.id} is in no GSRA group`,
          }
        : { allow: false, reason: 'unknown-user', detail: `${userDn} is not a GSRA user` };
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
