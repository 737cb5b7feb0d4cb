// What the directory's entries mean to GSRA — users, groups, hosts and group keys as both daemons
// use them — and the readers that take attribute values out of an ldapts entry, whatever the
// case of the attribute name.
import type { Entry } from 'ldapts';
import type { AccountState } from './accounts.ts';

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

/** Escape a value for use inside an RDN (RFC 4514). */
export function escapeDnValue(v: string): string {
  return v
    .replace(/[\\,+"<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}
