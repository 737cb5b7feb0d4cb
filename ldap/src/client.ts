// The GSRA directory client, used by the gateway (service account) and the agent (user login):
// users, groups, hosts, keys and secrets as GSRA reads them, on OpenLDAP and Active Directory.
// It runs on an LdapConnection (connection.ts), which keeps these rules:
//  - TLS always: ldaps:// or StartTLS, the server certificate verified against the configured
//    CA; there is no switch to turn verification off.
//  - connect and operation timeouts are always set (ldapts waits forever without them).
//  - a lost connection is re-established (and re-bound) once, transparently, per operation;
//    a connection that was silently re-opened without a bind is never used.
//  - passwords, group keys and user secrets never reach a log line or an error message.
import type { Entry, SearchOptions } from 'ldapts';
import {
  DirectoryError,
  InvalidCredentialsError,
  NotInAnyGroupError,
  NoSuchUserError,
  NoUserSecretError,
  DirectoryProtocolError,
} from './errors.ts';
import { ATTR, escapeFilterValue, parseGeneralizedTime, parseHost, type Flavor } from './schema.ts';
import { ACCOUNT_ATTRS, accountState } from './accounts.ts';
import { LdapConnection, type ConnectionOptions } from './connection.ts';
import {
  buf,
  escapeDnValue,
  str,
  strs,
  type DirectoryUser,
  type GroupKey,
  type GsraGroup,
  type GsraHost,
  type GsraUserEntry,
} from './entries.ts';

export type { Flavor } from './schema.ts';

export interface DirectoryClientOptions extends ConnectionOptions {
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

export class DirectoryClient extends LdapConnection {
  readonly flavor: Flavor;
  readonly baseDn: string;
  readonly groupsDn: string;
  private readonly userDnTemplate: string;
  private readonly upnSuffix: string | undefined;

  constructor(opts: DirectoryClientOptions) {
    super(opts);
    this.flavor = opts.flavor ?? 'openldap';
    this.baseDn = opts.baseDn;
    this.groupsDn = opts.groupsDn ?? opts.baseDn;
    this.userDnTemplate = opts.userDnTemplate ?? 'uid={uid},ou=people,{baseDn}';
    this.upnSuffix = opts.upnSuffix;
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
}

/** The same error with a hint appended to its message (typed errors keep their class and code). */
function withHint(err: unknown, hint: string | undefined): unknown {
  if (!hint || !(err instanceof InvalidCredentialsError) || err.reason !== undefined) return err;
  err.message = `${err.message} (${hint})`;
  return err;
}
