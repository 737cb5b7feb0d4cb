// Typed directory errors. Every message says, in words an operator understands, which server,
// what went wrong and (where it helps) what to do. Messages never contain passwords or keys.
import {
  InvalidCredentialsError as LdapInvalidCredentials,
  ConfidentialityRequiredError,
  StrongAuthRequiredError,
  InsufficientAccessError,
  NoSuchObjectError,
  AlreadyExistsError as LdapAlreadyExists,
  ResultCodeError,
  InappropriateAuthError,
} from 'ldapts';

export type DirectoryErrorCode =
  | 'invalid-credentials'
  | 'unreachable'
  | 'tls'
  | 'timeout'
  | 'tls-required'
  | 'not-in-any-group'
  | 'no-such-user'
  | 'no-such-group'
  | 'no-secret'
  | 'access-denied'
  | 'already-exists'
  | 'not-bound'
  | 'invalid-argument'
  | 'ldap';

/** Base class of every error the directory client throws. */
export class DirectoryError extends Error {
  readonly code: DirectoryErrorCode;
  /** The LDAP server URL concerned, when there is one. */
  readonly url: string | undefined;
  constructor(code: DirectoryErrorCode, message: string, opts: { url?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.url = opts.url;
  }
}

/** The server rejected the bind: wrong password, unknown user, or (AD) a locked/expired/disabled account. */
export class InvalidCredentialsError extends DirectoryError {
  /** AD sub-reason from the "data XXX" code, when the server is AD. */
  readonly reason:
    'bad-password' | 'locked' | 'expired' | 'password-expired' | 'must-change' | 'disabled' | undefined;
  constructor(url: string, who: string, reason?: InvalidCredentialsError['reason'], cause?: unknown) {
    const why =
      reason === 'locked'
        ? 'the account is locked'
        : reason === 'expired'
          ? 'the account has expired'
          : reason === 'password-expired'
            ? 'the password has expired'
            : reason === 'must-change'
              ? 'the password must be changed first'
              : reason === 'disabled'
                ? 'the account is disabled'
                : 'wrong user name or password';
    super('invalid-credentials', `LDAP server ${url} refused the login of ${who}: ${why}`, { url, cause });
    this.reason = reason;
  }
}

/** No TCP/TLS connection could be made (refused, host unknown, connect timeout, server gone). */
export class DirectoryUnreachableError extends DirectoryError {
  constructor(url: string, detail: string, cause?: unknown) {
    super('unreachable', `LDAP server ${url} unreachable (${detail})`, { url, cause });
  }
}

/** The server's certificate could not be verified against the configured CA (or its name does not match). */
export class TlsVerificationError extends DirectoryError {
  readonly tlsCode: string | undefined;
  constructor(url: string, detail: string, tlsCode?: string, cause?: unknown) {
    super(
      'tls',
      `TLS certificate of LDAP server ${url} could not be verified (${detail}); check that the configured CA file is the CA that issued the server's certificate and that the URL uses a name or address the certificate lists`,
      { url, cause },
    );
    this.tlsCode = tlsCode;
  }
}

/** An operation got no answer within the operation timeout. */
export class DirectoryTimeoutError extends DirectoryError {
  constructor(url: string, what: string, ms: number, cause?: unknown) {
    super('timeout', `LDAP server ${url} did not answer ${what} within ${ms} ms`, { url, cause });
  }
}

/** The server requires TLS for this (e.g. a simple bind over plain ldap:// without StartTLS). */
export class TlsRequiredError extends DirectoryError {
  constructor(url: string, cause?: unknown) {
    super(
      'tls-required',
      `LDAP server ${url} requires an encrypted connection for this; use ldaps:// or enable StartTLS`,
      { url, cause },
    );
  }
}

/** The account is valid but belongs to no GSRA group. */
export class NotInAnyGroupError extends DirectoryError {
  readonly userDn: string;
  constructor(url: string, userDn: string) {
    super(
      'not-in-any-group',
      `account ${userDn} is not in any GSRA group on ${url}; ask IT to add it to a group (gsra-admin add-user <group> <user>)`,
      { url },
    );
    this.userDn = userDn;
  }
}

export class NoSuchUserError extends DirectoryError {
  /** A hint when the cause is likely a configuration mistake (e.g. the wrong flavor). */
  readonly hint: string | undefined;
  constructor(url: string, id: string, hint?: string) {
    super('no-such-user', `no user "${id}" found on LDAP server ${url}${hint ? `; ${hint}` : ''}`, { url });
    this.hint = hint;
  }
}

export class NoSuchGroupError extends DirectoryError {
  constructor(url: string, name: string) {
    super('no-such-group', `no GSRA group "${name}" found on LDAP server ${url}`, { url });
  }
}

/** The user has no gsraUserSecret, or the bound account may not read it. */
export class NoUserSecretError extends DirectoryError {
  constructor(url: string, userDn: string) {
    super(
      'no-secret',
      `no GSRA secret readable for ${userDn} on ${url}; either none is set (gsra-admin set-secret <user>) or this account may not read it`,
      { url },
    );
  }
}

export class AccessDeniedError extends DirectoryError {
  constructor(url: string, what: string, cause?: unknown) {
    super('access-denied', `LDAP server ${url} denied ${what}: the bound account lacks the rights`, {
      url,
      cause,
    });
  }
}

export class AlreadyExistsError extends DirectoryError {
  constructor(url: string, what: string, cause?: unknown) {
    super('already-exists', `${what} already exists on LDAP server ${url}`, { url, cause });
  }
}

export class NotBoundError extends DirectoryError {
  constructor(url: string) {
    super('not-bound', `not logged in to LDAP server ${url}: call bindUser() or bindService() first`, {
      url,
    });
  }
}

/** Any other LDAP failure; carries the LDAP result code. */
export class DirectoryProtocolError extends DirectoryError {
  readonly resultCode: number | undefined;
  constructor(url: string, what: string, detail: string, resultCode?: number, cause?: unknown) {
    super('ldap', `LDAP server ${url} failed ${what}: ${detail}`, { url, cause });
    this.resultCode = resultCode;
  }
}

const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

const TLS_WORDS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate chain ends in a CA that is not the configured one',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not the configured CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate was not issued by the configured CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the issuer of the server certificate is not the configured CA',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not list the host name or address in the URL',
};

/** AD puts "data 52e" etc. in the diagnostic message of result 49. */
function adReason(message: string): InvalidCredentialsError['reason'] {
  const m = /data ([0-9a-f]{3,4})/i.exec(message);
  switch (m?.[1]?.toLowerCase()) {
    case '775':
      return 'locked';
    case '701':
      return 'expired';
    case '532':
      return 'password-expired';
    case '773':
      return 'must-change';
    case '533':
      return 'disabled';
    case '52e':
      return 'bad-password';
    default:
      return undefined;
  }
}

export interface TranslateContext {
  url: string;
  /** What was being done, e.g. "the search for groups" or "login of alice". */
  what: string;
  /** For binds: who tried to log in (never the password). */
  who?: string;
  connectTimeoutMs: number;
  timeoutMs: number;
}

/** Map an ldapts / Node error to a typed DirectoryError. */
export function translateError(err: unknown, ctx: TranslateContext): DirectoryError {
  if (err instanceof DirectoryError) return err;
  const e = err as NodeJS.ErrnoException & { code?: string | number };
  const msg = e?.message ?? String(err);
  if (err instanceof LdapInvalidCredentials) {
    return new InvalidCredentialsError(ctx.url, ctx.who ?? 'this account', adReason(msg), err);
  }
  if (err instanceof InappropriateAuthError) {
    return new InvalidCredentialsError(ctx.url, ctx.who ?? 'this account', undefined, err);
  }
  if (err instanceof ConfidentialityRequiredError || err instanceof StrongAuthRequiredError) {
    return new TlsRequiredError(ctx.url, err);
  }
  if (err instanceof InsufficientAccessError) return new AccessDeniedError(ctx.url, ctx.what, err);
  if (err instanceof LdapAlreadyExists) return new AlreadyExistsError(ctx.url, ctx.what, err);
  if (err instanceof NoSuchObjectError) {
    return new DirectoryProtocolError(ctx.url, ctx.what, 'no such entry', 32, err);
  }
  if (err instanceof ResultCodeError) {
    return new DirectoryProtocolError(ctx.url, ctx.what, msg.split('\n')[0] ?? msg, err.code, err);
  }
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code && (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))) {
    return new TlsVerificationError(ctx.url, TLS_WORDS[code] ?? `${code}: ${msg}`, code, err);
  }
  if (/certificate|self.signed|altnames/i.test(msg) && !/timed out|timeout/i.test(msg)) {
    return new TlsVerificationError(ctx.url, msg, code, err);
  }
  switch (code) {
    case 'ECONNREFUSED':
      return new DirectoryUnreachableError(ctx.url, 'connection refused: nothing listens on that port', err);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new DirectoryUnreachableError(ctx.url, 'host name not found', err);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new DirectoryUnreachableError(ctx.url, 'no route to host', err);
    case 'ECONNRESET':
    case 'EPIPE':
      return new DirectoryUnreachableError(ctx.url, 'connection reset by the server', err);
    case 'ETIMEDOUT':
      return new DirectoryUnreachableError(ctx.url, 'connect timed out', err);
  }
  if (msg === 'Connection timeout') {
    return new DirectoryUnreachableError(ctx.url, `connect timed out after ${ctx.connectTimeoutMs} ms`, err);
  }
  if (/Operation timed out/.test(msg))
    return new DirectoryTimeoutError(ctx.url, ctx.what, ctx.timeoutMs, err);
  if (
    /Connection closed before|Socket error|socket disconnected|Socket connection not established/i.test(msg)
  ) {
    return new DirectoryUnreachableError(ctx.url, `connection lost: ${msg.split('\n')[0]}`, err);
  }
  return new DirectoryProtocolError(ctx.url, ctx.what, msg, undefined, err);
}
