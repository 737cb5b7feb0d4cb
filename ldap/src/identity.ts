// User-id canonicalisation: whatever form a user typed or an agent sent (any case, a DN, a mail
// address / userPrincipalName, DOMAIN\name, corp.example\name, a bare id that the agent completes
// with its upnSuffix), the gateway maps it to one account and names that account by the
// directory's own id — OpenLDAP `uid`, Active Directory `sAMAccountName` — for per-user limits,
// audit logs and who-can-reach. Pure: no I/O; the index is built from a policy snapshot.
import type { Flavor } from './schema.ts';

export type UserIdForm = 'dn' | 'nt' | 'upn' | 'bare';

export interface ParsedUserId {
  form: UserIdForm;
  /** Lower-case; DNs normalised (normalizeDn). For 'nt' the name after the backslash. */
  value: string;
  /** 'nt' only: the part before the backslash (NetBIOS or DNS domain), lower-case. */
  domain?: string;
}

/** Longest user id the gateway considers (the protocol carries at most 64 bytes anyway). */
export const MAX_USER_ID = 256;

/** A DN in a form two spellings of the same DN share: lower case, no blanks around separators. */
export function normalizeDn(dn: string): string {
  return dn
    .trim()
    .toLowerCase()
    .replace(/\s*(?<!\\)([,=+])\s*/g, '$1');
}

/** The form of a user id, or undefined if it is empty or absurd. */
export function parseUserId(typed: string): ParsedUserId | undefined {
  const id = typed.trim();
  if (!id || id.length > MAX_USER_ID) return undefined;
  if (id.includes('=')) return { form: 'dn', value: normalizeDn(id) };
  const bs = id.indexOf('\\');
  if (bs >= 0) {
    const name = id.slice(bs + 1).toLowerCase();
    const domain = id.slice(0, bs).toLowerCase();
    if (!name || !domain || name.includes('\\')) return undefined;
    return { form: 'nt', value: name, domain };
  }
  if (id.includes('@')) return { form: 'upn', value: id.toLowerCase() };
  return { form: 'bare', value: id.toLowerCase() };
}

/** The DNS domain a base DN names: DC=corp,DC=example -> corp.example (undefined without DC= parts). */
export function dnsDomainOf(baseDn: string): string | undefined {
  const dcs = normalizeDn(baseDn)
    .split(',')
    .filter((r) => r.startsWith('dc='))
    .map((r) => r.slice(3));
  return dcs.length ? dcs.join('.') : undefined;
}

export interface IndexedUser {
  dn: string;
  /** The directory's own id: uid (OpenLDAP) or sAMAccountName (AD). */
  uid?: string;
  /** userPrincipalName (AD) or mail (OpenLDAP). */
  upn?: string;
}

export interface UserIndexOptions {
  flavor: Flavor;
  /**
   * AD: DNS domains for which `name@domain` is the implicit UPN of sAMAccountName `name` (the
   * domain of the base DN), and the agents' upnSuffix (a bare id means id@upnSuffix).
   */
  dnsDomains?: string[];
  upnSuffix?: string;
}

/** Resolves any form of a user id to one account of a snapshot. Ambiguous ids resolve to nothing. */
export class UserIndex<U extends IndexedUser> {
  private readonly byDn = new Map<string, U>();
  private readonly byUid = new Map<string, U>();
  private readonly byUpn = new Map<string, U>();
  private readonly domains: Set<string>;
  private readonly upnSuffix: string | undefined;
  /** Ids two accounts claim (e.g. the same mail on two entries): left out, listed here for the log. */
  readonly ambiguous: string[] = [];

  constructor(users: Iterable<U>, opts: UserIndexOptions) {
    this.domains = new Set((opts.dnsDomains ?? []).map((d) => d.toLowerCase()));
    this.upnSuffix = opts.upnSuffix?.toLowerCase().replace(/^@/, '');
    const dup = new Set<string>();
    const put = (m: Map<string, U>, k: string | undefined, u: U, kind: string) => {
      if (!k) return;
      const key = k.toLowerCase();
      if (dup.has(`${kind}:${key}`)) return;
      const other = m.get(key);
      if (other && other !== u) {
        m.delete(key);
        dup.add(`${kind}:${key}`);
        this.ambiguous.push(`${kind} ${key}`);
        return;
      }
      m.set(key, u);
    };
    for (const u of users) {
      put(this.byDn, normalizeDn(u.dn), u, 'dn');
      put(this.byUid, u.uid, u, opts.flavor === 'ad' ? 'sAMAccountName' : 'uid');
      put(this.byUpn, u.upn, u, opts.flavor === 'ad' ? 'userPrincipalName' : 'mail');
    }
  }

  get size(): number {
    return this.byDn.size;
  }

  /** The account `typed` names, or undefined (unknown, ambiguous or malformed). Never does I/O. */
  resolve(typed: string): U | undefined {
    const p = parseUserId(typed);
    if (!p) return undefined;
    switch (p.form) {
      case 'dn':
        return this.byDn.get(p.value);
      case 'nt':
        // DOMAIN\name and corp.example\name: the account name in this (single) domain.
        return this.byUid.get(p.value);
      case 'upn': {
        const u = this.byUpn.get(p.value);
        if (u) return u;
        // AD's implicit UPN: sAMAccountName@<dns domain> names the account even when its
        // userPrincipalName says otherwise.
        const at = p.value.lastIndexOf('@');
        return this.domains.has(p.value.slice(at + 1)) ? this.byUid.get(p.value.slice(0, at)) : undefined;
      }
      case 'bare':
        return (
          this.byUid.get(p.value) ??
          (this.upnSuffix ? this.byUpn.get(`${p.value}@${this.upnSuffix}`) : undefined)
        );
    }
  }
}
