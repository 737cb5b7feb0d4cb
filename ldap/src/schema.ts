// Names of the GSRA schema (ldap/schema/gsra.schema, gsra.ldif, gsra-ad.ldf) and small codecs
// for its values. The same names are used on OpenLDAP and on Active Directory.
import { isIP } from 'node:net';

export type Flavor = 'openldap' | 'ad';

/** OID arc of the GSRA schema (RFC 5612 documentation arc; replace with your own PEN). */
export const GSRA_OID_ARC = '1.3.6.1.4.1.32473.1';

export const ATTR = {
  groupClass: 'gsraAccessGroup',
  userClass: 'gsraUser',
  key: 'gsraGroupKey',
  keyVersion: 'gsraGroupKeyVersion',
  keyRotatedAt: 'gsraGroupKeyRotatedAt',
  prevKey: 'gsraGroupKeyPrevious',
  prevKeyVersion: 'gsraGroupKeyPreviousVersion',
  prevKeyNotAfter: 'gsraGroupKeyPreviousNotAfter',
  host: 'gsraHost',
  userSecret: 'gsraUserSecret',
} as const;

/** Group keys and user secrets are this many random bytes. */
export const KEY_BYTES = 32;

/** Escape a value for an LDAP filter (RFC 4515). */
export function escapeFilterValue(v: string): string {
  return v.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * LDAP GeneralizedTime (UTC) with a zero fraction, e.g. 20261123004000.0Z: AD insists on the
 * fraction, OpenLDAP accepts it.
 */
export function toGeneralizedTime(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, '.0Z');
}

/** Parse GeneralizedTime as OpenLDAP (20261123004000Z) and AD (20261123004000.0Z) write it. */
export function parseGeneralizedTime(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:[.,](\d+))?Z$/.exec(s.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec, frac] = m;
  const ms = frac ? Math.round(Number(`0.${frac}`) * 1000) : 0;
  return new Date(
    Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec ?? 0), ms),
  );
}

/** A gsraHost value is "<dns-name> <address>". */
export function formatHost(h: { name: string; address: string }): string {
  return `${h.name.toLowerCase()} ${h.address}`;
}

export function parseHost(v: string): { name: string; address: string } | undefined {
  const [name, address, ...rest] = v.trim().split(/\s+/);
  if (!name || !address || rest.length > 0) return undefined;
  return { name: name.toLowerCase(), address };
}

const DNS_NAME =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** Validate a host name / address pair; returns a message or undefined if fine. */
export function checkHost(name: string, address: string): string | undefined {
  if (!DNS_NAME.test(name)) return `"${name}" is not a DNS host name`;
  if (isIP(address) === 0) return `"${address}" is not an IPv4 or IPv6 address`;
  return undefined;
}
