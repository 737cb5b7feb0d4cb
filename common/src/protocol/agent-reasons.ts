// What the agent makes of the gateway's reason codes (docs/protocol.md §13): which refusals must
// be authenticated to count, which end the session, which are decisions of the gateway's policy.

import type { ReasonName } from './constants.ts';

/** Refusals a gateway only sends after the user proof verified, always with authKind 1. */
export const ALWAYS_AUTHENTICATED: ReadonlySet<ReasonName> = new Set<ReasonName>([
  'revoked-user',
  'account-disabled',
  'not-in-group',
  'stale-key-version',
  'unknown-key-version',
  'rate-limited',
]);
/** Refusals of a request that end the session: the I/O layer re-reads LDAP and logs in again. */
export const SESSION_ENDING: ReadonlySet<ReasonName> = new Set<ReasonName>([
  'revoked-user',
  'account-disabled',
  'unknown-user',
  'stale-key-version',
  'session-expired',
]);

/** Decisions of the gateway's policy (a directory change), as opposed to message-level errors. */
export const POLICY_REFUSALS: ReadonlySet<ReasonName> = new Set<ReasonName>([
  'unknown-user',
  'revoked-user',
  'account-disabled',
  'not-in-group',
  'stale-key-version',
  'unknown-in',
  'policy-denied',
  'directory-unavailable',
]);
