// Account state: is a directory account still usable (not disabled, locked or expired)? The
// gateway reads these attributes for every GSRA user at each policy refresh, so offboarding in
// the directory takes effect within one refresh (docs/ldap.md §"Offboarding").
//
// Active Directory: userAccountControl ACCOUNTDISABLE (0x2) and LOCKOUT (0x10),
// msDS-User-Account-Control-Computed LOCKOUT (the live lockout bit: AD does not keep 0x10 in the
// stored attribute), accountExpires (FILETIME, 0 or 2^63-1 = never).
// OpenLDAP (ppolicy overlay, 2.5): pwdAccountLockedTime (any value: locked; 000001010000Z =
// locked by an administrator), pwdStartTime / pwdEndTime (the validity window of the account's
// password), and shadowExpire (RFC 2307 shadowAccount, days since 1970) when the schema has it.
import type { Entry } from 'ldapts';
import { parseGeneralizedTime, type Flavor } from './schema.ts';

export type AccountProblem = 'disabled' | 'locked' | 'expired';

export type AccountState = { usable: true } | { usable: false; problem: AccountProblem; detail: string };

/** The attributes accountState() reads (operational ones must be asked for by name). */
export const ACCOUNT_ATTRS: Record<Flavor, readonly string[]> = {
  ad: ['userAccountControl', 'msDS-User-Account-Control-Computed', 'lockoutTime', 'accountExpires'],
  openldap: ['pwdAccountLockedTime', 'pwdStartTime', 'pwdEndTime', 'shadowExpire'],
};

export const UAC = { ACCOUNTDISABLE: 0x2, LOCKOUT: 0x10 } as const;

/** Milliseconds between 1601-01-01 (FILETIME epoch) and 1970-01-01. */
const FILETIME_EPOCH_OFFSET_MS = 11_644_473_600_000n;
const NEVER = 0x7fff_ffff_ffff_ffffn;

/** An AD FILETIME (100 ns since 1601) as ms since 1970; undefined for 0 / "never" / garbage. */
export function fileTimeToMs(v: string | undefined): number | undefined {
  if (v === undefined || !/^-?\d+$/.test(v.trim())) return undefined;
  const n = BigInt(v.trim());
  if (n <= 0n || n >= NEVER) return undefined;
  return Number(n / 10_000n - FILETIME_EPOCH_OFFSET_MS);
}

function first(entry: Entry, attr: string): string | undefined {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attr.toLowerCase());
  const v = key === undefined ? undefined : entry[key];
  const one = Array.isArray(v) ? v[0] : v;
  if (one === undefined) return undefined;
  return Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Decide from an entry read with ACCOUNT_ATTRS[flavor] whether the account may be used at `now`. */
export function accountState(entry: Entry, flavor: Flavor, now: number): AccountState {
  return flavor === 'ad' ? adState(entry, now) : openldapState(entry, now);
}

function adState(e: Entry, now: number): AccountState {
  const uac = Number(first(e, 'userAccountControl') ?? 0);
  const computed = Number(first(e, 'msDS-User-Account-Control-Computed') ?? 0);
  if (uac & UAC.ACCOUNTDISABLE)
    return { usable: false, problem: 'disabled', detail: 'the account is disabled in Active Directory' };
  if (uac & UAC.LOCKOUT || computed & UAC.LOCKOUT)
    return { usable: false, problem: 'locked', detail: 'the account is locked out in Active Directory' };
  const expires = fileTimeToMs(first(e, 'accountExpires'));
  if (expires !== undefined && expires <= now)
    return { usable: false, problem: 'expired', detail: `the account expired on ${iso(expires)}` };
  return { usable: true };
}

function openldapState(e: Entry, now: number): AccountState {
  const locked = first(e, 'pwdAccountLockedTime');
  if (locked !== undefined) {
    return {
      usable: false,
      problem: 'locked',
      detail: locked.startsWith('000001010000')
        ? 'the account is locked by an administrator'
        : 'the account is locked (password policy)',
    };
  }
  const start = parseTime(first(e, 'pwdStartTime'));
  if (start !== undefined && start > now)
    return { usable: false, problem: 'disabled', detail: `the account is valid only from ${iso(start)}` };
  const end = parseTime(first(e, 'pwdEndTime'));
  if (end !== undefined && end <= now)
    return { usable: false, problem: 'expired', detail: `the account expired on ${iso(end)}` };
  const shadow = first(e, 'shadowExpire');
  if (shadow !== undefined && /^\d+$/.test(shadow)) {
    // days since 1970-01-01; the account is unusable from that day on (-1 / absent: never)
    const at = Number(shadow) * 86_400_000;
    if (at <= now) return { usable: false, problem: 'expired', detail: `the account expired on ${iso(at)}` };
  }
  return { usable: true };
}

function parseTime(v: string | undefined): number | undefined {
  return v === undefined ? undefined : parseGeneralizedTime(v)?.getTime();
}
