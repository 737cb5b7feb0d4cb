// The GSRA directory client, used by the gateway (service account) and the agent (user login).
// Built on ldapts (see docs/ldap.md for why). Rules it keeps:
//  - TLS always: ldaps:// or StartTLS, the server certificate verified against the configured
//    CA; there is no switch to turn verification off.
//  - connect and operation timeouts are always set (ldapts waits forever without them).
//  - a lost connection is re-established (and re-bound) once, transparently, per operation;
//    a connection that was silently re-opened without a bind is never used.
//  - passwords, group keys and user secrets never reach a log line or an error message.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Client, type Entry, type SearchOptions } from 'ldapts';
import { createLogger, type Logger } from '@gsra/common';
import {
  DirectoryError,
  DirectoryUnreachableError,
  InvalidCredentialsError,
  NotBoundError,
  NotInAnyGroupError,
  NoSuchUserError,
  NoUserSecretError,
  DirectoryProtocolError,
  translateError,
} from './errors.ts';
import { ATTR, escapeFilterValue, parseGeneralizedTime, parseHost, type Flavor } from './schema.ts';
import { ACCOUNT_ATTRS, accountState, type AccountState } from './accounts.ts';

export type { Flavor } from './schema.ts';

export interface DirectoryClientOptions {
  /** ldaps://host:636 (implicit TLS) or ldap://host:389 with startTls: true. */
  url: string;
  /** PEM text of the CA(s) that issued the server certificate. One of caPem / caFile is required. */
  caPem?: string | string[];
  /** File holding the CA PEM. */
  caFile?: string;
  /** Use StartTLS on an ldap:// URL (required for ldap:// URLs: plain text is refused). */
  startTls?: boolean;
  /** TCP + TLS connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Per-operation timeout (default 10000 ms). */
  timeoutMs?: number;
  /** Search base, e.g. dc=corp,dc=example. */
  baseDn: string;
  /** 'openldap' (default) or 'ad' (Active Directory / Samba AD). */
  flavor?: Flavor;
  /** Where GSRA groups live (subtree). Default: baseDn. */
  groupsDn?: string;
  /**
   * OpenLDAP: DN template for a bare user id; {uid} and {baseDn} are replaced.
   * Default 'uid={uid},ou=people,{baseDn}'.
   */
  userDnTemplate?: string;
  /** AD: suffix appended to a bare user id to make a userPrincipalName (e.g. corp.example). */
  upnSuffix?: string;
  /** Paged-search page size (default 200). */
  pageSize?: number;
  logger?: Logger;
}

/** One version of a group key. */
export interface GroupKey {
  version: number;
  key: Buffer;
  /** Only for the previous key during its grace period: when it stops being valid. */
  notAfter?: Date;
}

export interface GsraHost {
  /** DNS name of the internal host (IN), e.g. intra1.corp.example. */
  name: string;
  /** Its address on the office LAN, e.g. 10.0.0.11. */
  address: string;
}

export interface GsraGroup {
  name: string;
  dn: string;
  /** Current key first, then the previous one while its grace period lasts. Empty when not readable. */
  keys: GroupKey[];
  keyRotatedAt?: Date;
  hosts: GsraHost[];
  /** Member user DNs (AD: nested membership resolved, by allGroups()). */
  members: string[];
}

export interface DirectoryUser {
  dn: string;
  /** uid (OpenLDAP) or sAMAccountName (AD): the directory's own id, the canonical one. */
  uid?: string;
  /** userPrincipalName (AD) or mail (OpenLDAP). */
  upn?: string;
  displayName?: string;
}

/** A GSRA user as the gateway loads it at each refresh: identity, secret and account state. */
export interface GsraUserEntry extends DirectoryUser {
  /** gsraUserSecret; undefined when none is set (or not readable by the bound account). */
  secret?: Buffer;
  state: AccountState;
}

/** The LDAP_CAP_ACTIVE_DIRECTORY_OID capability every AD (and Samba AD) DC lists in its root DSE. */
const AD_CAPABILITY = '1.2.840.113556.1.4.800';

const GROUP_ATTRS = [
  'cn',
  'member',
  ATTR.host,
  ATTR.key,
  ATTR.keyVersion,
  ATTR.keyRotatedAt,
  ATTR.prevKey,
  ATTR.prevKeyVersion,
  ATTR.prevKeyNotAfter,
];
const BUFFER_ATTRS = [ATTR.key, ATTR.prevKey, ATTR.userSecret];

function values(entry: Entry, attr: string): (string | Buffer)[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attr.toLowerCase());
  if (key === undefined) return [];
  const v = entry[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]) as (string | Buffer)[];
}

export function strs(entry: Entry, attr: string): string[] {
  return values(entry, attr).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
}

export function str(entry: Entry, attr: string): string | undefined {
  return strs(entry, attr)[0];
}

export function buf(entry: Entry, attr: string): Buffer | undefined {
  const v = values(entry, attr)[0];
  if (v === undefined) return undefined;
  return Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export class DirectoryClient {
  readonly url: string;
  readonly flavor: Flavor;
  readonly baseDn: string;
  readonly groupsDn: string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  protected readonly log: Logger;
  private readonly ca: string[];
  private readonly startTls: boolean;
  private readonly host: string;
  private readonly pageSize: number;
  private readonly userDnTemplate: string;
  private readonly upnSuffix: string | undefined;
  private ldap: Client | undefined;
  private creds: { dn: string; password: string; who: string } | undefined;
  private boundDn: string | undefined;
  private readonly dead = new WeakSet<Client>();
  private opening: Promise<Client> | undefined;

  constructor(opts: DirectoryClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.flavor = opts.flavor ?? 'openldap';
    this.baseDn = opts.baseDn;
    this.groupsDn = opts.groupsDn ?? opts.baseDn;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.timeoutMs = opts.timeoutMs ?? 10000;
    this.pageSize = opts.pageSize ?? 200;
    this.userDnTemplate = opts.userDnTemplate ?? 'uid={uid},ou=people,{baseDn}';
    this.upnSuffix = opts.upnSuffix;
    this.log = opts.logger ?? createLogger('ldap');
    const m = /^(ldaps?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/i.exec(this.url);
    if (!m)
      throw new DirectoryError(
        'invalid-argument',
        `invalid LDAP URL "${opts.url}" (expected ldaps://host[:port] or ldap://host[:port])`,
      );
    const scheme = (m[1] as string).toLowerCase();
    this.host = (m[2] as string).replace(/^\[|\]$/g, '');
    this.startTls = opts.startTls ?? false;
    if (scheme === 'ldap' && !this.startTls) {
      throw new DirectoryError(
        'invalid-argument',
        `refusing plain-text LDAP to ${this.url}: use ldaps:// or set startTls (gsra-admin: --starttls)`,
      );
    }
    if (scheme === 'ldaps' && this.startTls) {
      throw new DirectoryError('invalid-argument', `StartTLS needs an ldap:// URL, got ${this.url}`);
    }
    const ca = opts.caPem ?? (opts.caFile ? readCa(opts.caFile) : undefined);
    if (!ca || (Array.isArray(ca) && ca.length === 0)) {
      throw new DirectoryError(
        'invalid-argument',
        `no CA configured for ${this.url}: give the CA certificate that issued the LDAP server's certificate (caPem or caFile)`,
      );
    }
    this.ca = Array.isArray(ca) ? ca : [ca];
  }

  /** DN of the account this client is logged in as, if any. */
  get bindDn(): string | undefined {
    return this.boundDn;
  }

  private ctx(what: string, who?: string) {
    return { url: this.url, what, who, connectTimeoutMs: this.connectTimeoutMs, timeoutMs: this.timeoutMs };
  }

  private newClient(): Client {
    const base = { url: this.url, connectTimeout: this.connectTimeoutMs, timeout: this.timeoutMs };
    // Passing tlsOptions switches ldapts to implicit TLS, so only for ldaps:// (StartTLS gets them later).
    return this.startTls
      ? new Client(base)
      : new Client({ ...base, tlsOptions: { ca: this.ca, host: this.host, minVersion: 'TLSv1.2' } });
  }

  /** Open a connection (with StartTLS when configured) and bind with the remembered credentials. */
  private async open(): Promise<Client> {
    const c = this.newClient();
    try {
      if (this.startTls) {
        await withTimeout(
          c.startTLS({
            ca: this.ca,
            host: this.host,
            ...(isIP(this.host) ? {} : { servername: this.host }),
            minVersion: 'TLSv1.2',
          }),
          this.connectTimeoutMs + this.timeoutMs,
          () =>
            new DirectoryUnreachableError(
              this.url,
              `StartTLS timed out after ${this.connectTimeoutMs + this.timeoutMs} ms`,
            ),
        );
      }
      if (this.startTls) {
        // ldapts watches only the plain socket for 'close'; after StartTLS that socket is wrapped,
        // so a server-side close would go unnoticed. Watch the TLS socket ourselves.
        const s = (c as unknown as { socket?: NodeJS.EventEmitter }).socket;
        s?.once('close', () => this.dead.add(c));
      }
      if (this.creds) await c.bind(this.creds.dn, this.creds.password);
      return c;
    } catch (err) {
      await c.unbind().catch(() => undefined);
      throw translateError(
        err,
        this.ctx(this.creds ? `login of ${this.creds.who}` : 'connect', this.creds?.who),
      );
    }
  }

  private drop(): void {
    const c = this.ldap;
    this.ldap = undefined;
    if (c) void c.unbind().catch(() => undefined);
  }

  /** The current session, or a new one (one at a time, however many operations wait for it). */
  private async session(): Promise<{ c: Client; reused: boolean }> {
    const cur = this.ldap;
    if (cur && cur.isConnected && !this.dead.has(cur) && (!this.creds || cur.isBound)) {
      return { c: cur, reused: true };
    }
    if (!this.opening) {
      if (cur) this.log.info('LDAP connection lost; reconnecting', { url: this.url });
      this.drop();
      const creds = this.creds;
      this.opening = this.open()
        .then((c) => {
          if (this.creds !== creds) {
            // Logged out or re-bound meanwhile: this session belongs to nobody.
            void c.unbind().catch(() => undefined);
            throw new NotBoundError(this.url);
          }
          this.ldap = c;
          return c;
        })
        .finally(() => {
          this.opening = undefined;
        });
    }
    return { c: await this.opening, reused: false };
  }

  /** Run an LDAP operation, reconnecting (and re-binding) once if the connection was lost. */
  protected async op<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { c, reused } = await this.session();
      try {
        return await fn(c);
      } catch (err) {
        const e = translateError(err, this.ctx(what));
        if (e instanceof DirectoryUnreachableError && this.ldap === c) this.drop();
        if (e instanceof DirectoryUnreachableError && reused && attempt === 0) {
          this.log.info('LDAP connection failed during an operation; retrying once on a new connection', {
            url: this.url,
            what,
          });
          continue;
        }
        throw e;
      }
    }
  }

  private async doBind(dn: string, password: string, who: string): Promise<void> {
    if (!password) {
      // An empty password is an "unauthenticated bind" that some servers accept as anonymous.
      throw new InvalidCredentialsError(this.url, who);
    }
    this.drop();
    this.creds = { dn, password, who };
    this.boundDn = undefined;
    try {
      this.ldap = await this.open();
    } catch (err) {
      this.creds = undefined;
      throw err;
    }
    this.boundDn = dn;
  }

  /**
   * Log in as a user. `id` is a DN, a uid (OpenLDAP: via userDnTemplate), or on AD a
   * userPrincipalName (alice@corp.example) or DOMAIN\alice. Returns the user's DN.
   */
  async bindUser(id: string, password: string): Promise<DirectoryUser> {
    const trimmed = id.trim();
    if (!trimmed) throw new DirectoryError('invalid-argument', 'empty user id');
    if (this.flavor === 'openldap') {
      const dn = trimmed.includes('=')
        ? trimmed
        : this.userDnTemplate.replaceAll('{uid}', escapeDnValue(trimmed)).replaceAll('{baseDn}', this.baseDn);
      try {
        await this.doBind(dn, password, trimmed);
      } catch (err) {
        throw withHint(err, this.formHint(trimmed));
      }
      const u = await this.readUser(dn);
      return u ?? { dn };
    }
    // AD: bind with what the user typed (DN, UPN or DOMAIN\user), then look up our own DN.
    let bindName = trimmed;
    const bs = trimmed.indexOf('\\');
    if (bs > 0 && trimmed.slice(0, bs).includes('.')) {
      // corp.example\alice: AD accepts NETBIOS\alice but not the DNS domain there (it answers
      // "wrong password"); alice@corp.example, the implicit UPN, names the same account.
      bindName = `${trimmed.slice(bs + 1)}@${trimmed.slice(0, bs)}`;
    }
    if (!trimmed.includes('=') && !trimmed.includes('@') && !trimmed.includes('\\')) {
      if (!this.upnSuffix) {
        throw new DirectoryError(
          'invalid-argument',
          `on Active Directory give a userPrincipalName (alice@corp.example), DOMAIN\\alice or a DN, not "${trimmed}"`,
        );
      }
      bindName = `${trimmed}@${this.upnSuffix}`;
    }
    await this.doBind(bindName, password, trimmed);
    const user = await this.findUser(bindName);
    this.boundDn = user.dn;
    return user;
  }

  /** What to tell someone whose id has a form this directory flavor does not log in with. */
  private formHint(id: string): string | undefined {
    if (this.flavor !== 'openldap' || id.includes('=')) return undefined;
    if (id.includes('\\'))
      return `"${id}" is an Active Directory form; on OpenLDAP log in with the uid (e.g. ${id.slice(id.indexOf('\\') + 1)}), or set flavor "ad" if the directory is Active Directory`;
    if (id.includes('@'))
      return `on OpenLDAP log in with the uid (e.g. ${id.slice(0, id.indexOf('@'))}), not the mail address, or set flavor "ad" if the directory is Active Directory`;
    return undefined;
  }

  /** Log in as a service account (the gateway) or an admin, by DN (AD: also UPN or DOMAIN\name). */
  async bindService(dn: string, password: string): Promise<void> {
    await this.doBind(dn, password, dn);
    if (this.flavor === 'ad' && !dn.includes('=')) this.boundDn = (await this.findUser(dn)).dn;
  }

  private requireBound(): void {
    if (!this.creds) throw new NotBoundError(this.url);
  }

  protected async searchAll(base: string, opts: SearchOptions, what: string): Promise<Entry[]> {
    this.requireBound();
    return this.op(what, async (c) => {
      const r = await c.search(base, { paged: { pageSize: this.pageSize }, ...opts });
      // AD returns continuation references (Configuration, DomainDnsZones, ...): ignored.
      return r.searchEntries;
    });
  }

  private async readUser(dn: string): Promise<DirectoryUser | undefined> {
    try {
      const [e] = await this.searchAll(
        dn,
        { scope: 'base', filter: '(objectClass=*)', attributes: this.userAttrs(), paged: false },
        `reading user ${dn}`,
      );
      return e ? this.toUser(e) : undefined;
    } catch (err) {
      if (err instanceof DirectoryProtocolError && err.resultCode === 32) return undefined;
      throw err;
    }
  }

  private userAttrs(): string[] {
    return this.flavor === 'ad'
      ? ['sAMAccountName', 'userPrincipalName', 'displayName']
      : ['uid', 'mail', 'displayName', 'cn'];
  }

  private toUser(e: Entry): DirectoryUser {
    const ad = this.flavor === 'ad';
    const u: DirectoryUser = { dn: e.dn };
    const uid = str(e, ad ? 'sAMAccountName' : 'uid');
    const upn = str(e, ad ? 'userPrincipalName' : 'mail');
    const displayName = str(e, 'displayName') ?? (ad ? undefined : str(e, 'cn'));
    if (uid !== undefined) u.uid = uid;
    if (upn !== undefined) u.upn = upn;
    if (displayName !== undefined) u.displayName = displayName;
    return u;
  }

  /** The filter that finds a user by id (uid / mail; AD: sAMAccountName / UPN / DOMAIN\name). */
  userFilter(id: string): string {
    if (this.flavor === 'ad') {
      const bs = id.indexOf('\\');
      if (bs >= 0)
        return `(&(objectCategory=person)(objectClass=user)(sAMAccountName=${escapeFilterValue(id.slice(bs + 1))}))`;
      if (id.includes('@'))
        return `(&(objectCategory=person)(objectClass=user)(userPrincipalName=${escapeFilterValue(id)}))`;
      return `(&(objectCategory=person)(objectClass=user)(sAMAccountName=${escapeFilterValue(id)}))`;
    }
    return id.includes('@')
      ? `(&(objectClass=inetOrgPerson)(mail=${escapeFilterValue(id)}))`
      : `(&(objectClass=inetOrgPerson)(uid=${escapeFilterValue(id)}))`;
  }

  /** Find a user by DN, uid/sAMAccountName, mail/userPrincipalName or DOMAIN\name. */
  async findUser(id: string): Promise<DirectoryUser> {
    if (id.includes('=')) {
      const u = await this.readUser(id);
      if (!u) throw new NoSuchUserError(this.url, id, await this.flavorHint());
      return u;
    }
    let found = await this.searchAll(
      this.baseDn,
      { scope: 'sub', filter: this.userFilter(id), attributes: this.userAttrs() },
      `the search for user ${id}`,
    );
    if (found.length === 0 && this.flavor === 'ad' && id.includes('@')) {
      // AD accepts the implicit UPN sAMAccountName@dns-domain for binds even when the account
      // has no userPrincipalName attribute (e.g. Administrator).
      found = await this.searchAll(
        this.baseDn,
        { scope: 'sub', filter: this.userFilter(id.slice(0, id.indexOf('@'))), attributes: this.userAttrs() },
        `the search for user ${id}`,
      );
    }
    const first = found[0];
    if (!first) throw new NoSuchUserError(this.url, id, await this.flavorHint());
    if (found.length > 1) {
      throw new DirectoryError(
        'invalid-argument',
        `user id "${id}" is ambiguous on ${this.url} (${found.length} entries); use the DN`,
      );
    }
    return this.toUser(first);
  }

  /** Which kind of server this is, from its root DSE (AD lists the Active Directory capability). */
  async serverFlavor(): Promise<Flavor> {
    const [root] = await this.searchAll(
      '',
      { scope: 'base', filter: '(objectClass=*)', attributes: ['supportedCapabilities'], paged: false },
      'reading the root DSE',
    );
    return root && strs(root, 'supportedCapabilities').includes(AD_CAPABILITY) ? 'ad' : 'openldap';
  }

  /**
   * When a look-up found nothing: a hint if the configured flavor is not the server's (the
   * filters of one flavor find nothing on the other). Never fails.
   */
  async flavorHint(): Promise<string | undefined> {
    const actual = await this.serverFlavor().catch(() => undefined);
    if (actual === undefined || actual === this.flavor) return undefined;
    return actual === 'ad'
      ? 'the server is Active Directory but flavor "openldap" is configured: set flavor "ad" (gsra-admin --flavor ad, ldap.flavor in the gateway and agent configs)'
      : 'the server is not Active Directory but flavor "ad" is configured: set flavor "openldap"';
  }

  /**
   * Every GSRA user (the gsraUser class) with its ids, secret and account state, in one paged
   * search: the gateway loads them at each refresh so that no user look-up ever waits for LDAP.
   */
  async gsraUsers(now = Date.now()): Promise<GsraUserEntry[]> {
    const filter =
      this.flavor === 'ad'
        ? `(&(objectCategory=person)(objectClass=user)(objectClass=${ATTR.userClass}))`
        : `(objectClass=${ATTR.userClass})`;
    const entries = await this.searchAll(
      this.baseDn,
      {
        scope: 'sub',
        filter,
        attributes: [...this.userAttrs(), ATTR.userSecret, ...ACCOUNT_ATTRS[this.flavor]],
        explicitBufferAttributes: BUFFER_ATTRS,
      },
      'the search for all GSRA users',
    );
    return entries.map((e) => {
      const secret = buf(e, ATTR.userSecret);
      return {
        ...this.toUser(e),
        ...(secret && secret.length > 0 ? { secret } : {}),
        state: accountState(e, this.flavor, now),
      };
    });
  }

  protected toGroup(e: Entry, now = new Date()): GsraGroup {
    const keys: GroupKey[] = [];
    const key = buf(e, ATTR.key);
    const version = Number(str(e, ATTR.keyVersion) ?? NaN);
    if (key && key.length > 0 && Number.isInteger(version)) keys.push({ version, key });
    const prev = buf(e, ATTR.prevKey);
    const prevVersion = Number(str(e, ATTR.prevKeyVersion) ?? NaN);
    const notAfterStr = str(e, ATTR.prevKeyNotAfter);
    const notAfter = notAfterStr ? parseGeneralizedTime(notAfterStr) : undefined;
    if (prev && prev.length > 0 && Number.isInteger(prevVersion) && notAfter && notAfter > now) {
      keys.push({ version: prevVersion, key: prev, notAfter });
    }
    const rotated = str(e, ATTR.keyRotatedAt);
    const g: GsraGroup = {
      name: str(e, 'cn') ?? e.dn,
      dn: e.dn,
      keys,
      hosts: strs(e, ATTR.host)
        .map(parseHost)
        .filter((h): h is GsraHost => h !== undefined),
      members: strs(e, 'member').filter((m) => m !== ''),
    };
    if (rotated) {
      const d = parseGeneralizedTime(rotated);
      if (d) g.keyRotatedAt = d;
    }
    return g;
  }

  protected groupSearch(filter: string): SearchOptions {
    return {
      scope: 'sub',
      filter: `(&(objectClass=${ATTR.groupClass})${filter})`,
      attributes: GROUP_ATTRS,
      explicitBufferAttributes: BUFFER_ATTRS,
    };
  }

  /**
   * The GSRA groups `userDn` belongs to (AD: nested membership counts), with their hosts and
   * the keys the bound account may read (a member reads its groups' keys). Throws
   * NotInAnyGroupError when there are none, unless { allowNone: true }.
   */
  async groupsOfUser(userDn: string, opts: { allowNone?: boolean } = {}): Promise<GsraGroup[]> {
    const memberFilter =
      this.flavor === 'ad'
        ? `(member:1.2.840.113556.1.4.1941:=${escapeFilterValue(userDn)})`
        : `(member=${escapeFilterValue(userDn)})`;
    const entries = await this.searchAll(
      this.groupsDn,
      this.groupSearch(memberFilter),
      `the search for the groups of ${userDn}`,
    );
    const now = new Date();
    const groups = entries.map((e) => this.toGroup(e, now)).sort((a, b) => a.name.localeCompare(b.name));
    if (groups.length === 0 && !opts.allowNone) throw new NotInAnyGroupError(this.url, userDn);
    return groups;
  }

  /** One GSRA group by name (cn) or DN, or undefined. */
  async group(nameOrDn: string): Promise<GsraGroup | undefined> {
    if (nameOrDn.includes('=')) {
      try {
        const [e] = await this.searchAll(
          nameOrDn,
          { ...this.groupSearch(''), scope: 'base', paged: false },
          `reading group ${nameOrDn}`,
        );
        return e ? await this.withTransitiveMembers(this.toGroup(e)) : undefined;
      } catch (err) {
        if (err instanceof DirectoryProtocolError && err.resultCode === 32) return undefined;
        throw err;
      }
    }
    const [e] = await this.searchAll(
      this.groupsDn,
      this.groupSearch(`(cn=${escapeFilterValue(nameOrDn)})`),
      `the search for group ${nameOrDn}`,
    );
    return e ? await this.withTransitiveMembers(this.toGroup(e)) : undefined;
  }

  /** AD: replace direct members by the users that are members directly or through nested groups. */
  protected async withTransitiveMembers(g: GsraGroup): Promise<GsraGroup> {
    if (this.flavor !== 'ad') return g;
    const users = await this.searchAll(
      this.baseDn,
      {
        scope: 'sub',
        filter: `(&(objectCategory=person)(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=${escapeFilterValue(g.dn)}))`,
        attributes: ['1.1'],
      },
      `the search for the members of ${g.name}`,
    );
    return { ...g, members: users.map((u) => u.dn).sort() };
  }

  /** Every GSRA group with members, hosts and (if readable: gateway) keys. */
  async allGroups(): Promise<GsraGroup[]> {
    const entries = await this.searchAll(
      this.groupsDn,
      this.groupSearch(''),
      'the search for all GSRA groups',
    );
    const now = new Date();
    const groups = entries.map((e) => this.toGroup(e, now)).sort((a, b) => a.name.localeCompare(b.name));
    if (this.flavor !== 'ad') return groups;
    const out: GsraGroup[] = [];
    for (let i = 0; i < groups.length; i += 8) {
      out.push(...(await Promise.all(groups.slice(i, i + 8).map((g) => this.withTransitiveMembers(g)))));
    }
    return out;
  }

  /** The user's GSRA secret (readable by the user itself and the gateways). */
  async userSecret(userDn: string): Promise<Buffer> {
    let entries: Entry[];
    try {
      entries = await this.searchAll(
        userDn,
        {
          scope: 'base',
          filter: '(objectClass=*)',
          attributes: [ATTR.userSecret],
          explicitBufferAttributes: BUFFER_ATTRS,
          paged: false,
        },
        `reading the secret of ${userDn}`,
      );
    } catch (err) {
      if (err instanceof DirectoryProtocolError && err.resultCode === 32)
        throw new NoSuchUserError(this.url, userDn);
      throw err;
    }
    const e = entries[0];
    if (!e) throw new NoSuchUserError(this.url, userDn);
    const s = buf(e, ATTR.userSecret);
    if (!s || s.length === 0) throw new NoUserSecretError(this.url, userDn);
    return s;
  }

  /** Close the connection and forget the credentials. */
  async close(): Promise<void> {
    const c = this.ldap;
    this.ldap = undefined;
    this.creds = undefined;
    this.boundDn = undefined;
    if (c) await c.unbind().catch(() => undefined);
  }
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new DirectoryError(
      'invalid-argument',
      `cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** The same error with a hint appended to its message (typed errors keep their class and code). */
function withHint(err: unknown, hint: string | undefined): unknown {
  if (!hint || !(err instanceof InvalidCredentialsError) || err.reason !== undefined) return err;
  err.message = `${err.message} (${hint})`;
  return err;
}

/** Escape a value for use inside an RDN (RFC 4514). */
export function escapeDnValue(v: string): string {
  return v
    .replace(/[\\,+"<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}
