// What the agent tells the teleworker (log line, `gsra-agent status`) when the gateway refuses:
// words a help desk can act on, built from the reason code and the gateway's text.

/** Reasons after which the user (or IT) must act; the session is down until then. */
export const ACCOUNT_REASONS: ReadonlySet<string> = new Set([
  'account-disabled',
  'revoked-user',
  'unknown-user',
]);

/** The sentence for a refused connection to internal host `name`. */
export function refusalWords(user: string, name: string, reason: string, text: string): string {
  switch (reason) {
    case 'not-in-group':
      return `${user} is not in a group that may reach ${name}`;
    case 'unknown-in':
      return `${name} is not an internal host GSRA knows`;
    case 'directory-unavailable':
      return `${name} unavailable: ${text || 'the gateway cannot read the office directory (LDAP); help desk: check the LDAP server and the gateway link to it'}`;
    case 'account-disabled':
      return `${name} refused: ${text || `the account ${user} is disabled, locked or expired in the directory; ask IT`}`;
    case 'revoked-user':
      return `${name} refused: ${text || `${user} is in no GSRA group; ask IT`}`;
    case 'internal':
      return `${name} refused by the gateway: internal error; try again later (help desk: see the gateway's log)`;
    default:
      return `${name} refused by the gateway (${reason}${text && text !== `refused: ${reason}` ? `: ${text}` : ''})`;
  }
}

/** The sentence for a refused login (AUTH) of `user` to the gateway. */
export function loginRefusalWords(user: string, reason: string, text: string): string {
  switch (reason) {
    case 'directory-unavailable':
      return `login to the gateway refused: ${text || 'the gateway cannot read the office directory (LDAP)'}`;
    case 'account-disabled':
    case 'revoked-user':
      return `login to the gateway refused: ${text || `${user}: ask IT`}`;
    case 'rate-limited':
      return `login to the gateway refused: ${text || `too many sessions for ${user}`} (help desk: another PC of ${user} may still be logged in; sessions end after their idle time)`;
    case 'replay':
      return "login to the gateway refused: the login attempt was replayed or retried too often (a flood at the gateway, or a copy of this PC's traffic); retrying with a new one";
    case 'bad-proof':
      return `login to the gateway refused: the stored GSRA secret of ${user} is not (or no longer) the one the gateway knows; run gsra-agent login again (if that works and this persists, the gateway has not read the directory since: wait for its next refresh)`;
    default:
      return `login to the gateway refused (${reason}${text ? `: ${text}` : ''})`;
  }
}

/** The sentence for a session that went down (shown until it is up again). */
export function sessionDownWords(reason: string): string {
  switch (reason) {
    case 'timeout':
      return "the gateway does not answer: it is unreachable from this PC, or too busy (under a flood it answers its known agents first); retrying by itself (help desk: check this PC reaches the gateway's address and UDP port)";
    case 'unknown-session':
      return 'the gateway restarted and proved it no longer knows the session; logging in again';
    default:
      return reason;
  }
}

/** The sentence for datagrams from the gateway's address that speak another protocol version. */
export const versionWords = (detail: string): string =>
  `the gateway speaks another GSRA protocol version (${detail}; this agent speaks 2): update the agent or the gateway`;
