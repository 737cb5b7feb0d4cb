// The gateway's side of the handshake (docs/protocol.md §6): HELLO → COOKIE without keeping any
// state, then AUTH checked in the order of §6.2 and, if everything holds, a new session and its
// AUTH_OK. Also the pre-session refusal HANDSHAKE_ERROR, used by the other phases too.

import { COOKIE_EPOCH_MS, MAC_LEN, TIME_WINDOW_MS, type ReasonName } from './constants.ts';
import { encode } from './codec.ts';
import {
  constantTimeEqual,
  deriveSessionSecret,
  generateEphemeral,
  groupProof,
  makeCookie,
  refusalTag,
  transcriptHash,
  userProof,
  x25519,
  type EphemeralKey,
} from './crypto.ts';
import { Deadlines } from './deadlines.ts';
import { FAILED, type Directory } from './gateway-directory.ts';
import type { Sessions } from './gateway-session.ts';
import { endpointString, type Endpoint, type GatewayResult } from './gateway-types.ts';
import type { Auth, HandshakeError, Hello } from './messages.ts';

/**
 * A HANDSHAKE_ERROR; with `auth` its tag is a MAC under the user's secret (authKind 1), with
 * `auth.resetToken` (unknown-session only) the session's reset token (authKind 2).
 */
export function handshakeError(
  ref: Buffer,
  reason: ReasonName,
  text: string,
  auth?: { userSecret: Buffer; th: Buffer } | { resetToken: Buffer },
): Buffer {
  const reset = auth && 'resetToken' in auth ? auth.resetToken : undefined;
  const m: HandshakeError = {
    type: 'HANDSHAKE_ERROR',
    ref,
    reason,
    text,
    authKind: reset ? 2 : auth ? 1 : 0,
    tag: reset ? Buffer.from(reset) : Buffer.alloc(MAC_LEN),
  };
  const buf = encode(m);
  if (auth && !reset && 'userSecret' in auth)
    refusalTag(auth.userSecret, auth.th, buf.subarray(0, buf.length - MAC_LEN)).copy(
      buf,
      buf.length - MAC_LEN,
    );
  return buf;
}

/** An AUTH that passed the cookie check, with the epoch key its cookie was made with. */
interface Attempt {
  msg: Auth;
  data: Buffer;
  from: Endpoint;
  eph: EphemeralKey;
  epoch: number;
}

interface AuthCacheEntry {
  auth: Buffer; // the AUTH datagram, to tell a duplicate from a different AUTH
  response: Buffer;
  expiresAt: number;
}

const epochOf = (ms: number) => Math.floor(ms / COOKIE_EPOCH_MS);

/**
 * How many AUTHs one cookie may carry past the cookie check (§6.2 step 3): an agent sends one
 * (and retransmits it, answered from the cache once it succeeded); a refused one may be
 * retransmitted a few times. Beyond this, the cookie costs one HMAC and a map look-up, never an
 * X25519 or a directory question.
 */
export const MAX_AUTH_PER_COOKIE = 4;
/** At most this many cookies are counted at once (oldest forgotten first; the daemon's per-source AUTH limit keeps it far from full). */
export const MAX_COUNTED_COOKIES = 65_536;

export class Handshake {
  private readonly ephemerals = new Map<number, EphemeralKey>(); // epoch → key (at most 2)
  private readonly authCache = new Map<string, AuthCacheEntry>(); // cookie hex → AUTH_OK
  /** AUTHs each cookie carried past the cookie check, until the cookie expires. */
  private readonly cookieUses = new Map<string, { n: number; expiresAt: number }>();
  private readonly cacheExpiries = new Deadlines<string>(); // the same keys, by expiresAt
  private readonly useExpiries = new Deadlines<string>(); // cookieUses' keys, by expiresAt

  constructor(
    private readonly cookieSecret: Buffer,
    private readonly directory: Directory,
    private readonly sessions: Sessions,
    private readonly maxSessionsPerUser: number,
  ) {}

  get cached(): number {
    return this.authCache.size;
  }
  get ephemeralKeys(): number {
    return this.ephemerals.size;
  }
  get countedCookies(): number {
    return this.cookieUses.size;
  }

  private ephemeral(epoch: number, create: boolean): EphemeralKey | undefined {
    let k = this.ephemerals.get(epoch);
    if (!k && create) {
      k = generateEphemeral();
      this.ephemerals.set(epoch, k);
      for (const e of this.ephemerals.keys()) if (e < epoch - 1) this.ephemerals.delete(e);
    }
    return k;
  }

  /** HELLO → COOKIE; nothing is stored but the epoch's key (one per minute, whoever asks). */
  hello(msg: Hello, from: Endpoint, now: number, out: GatewayResult): void {
    const cookieTime = Math.floor(now / 1000);
    const eph = this.ephemeral(epochOf(cookieTime * 1000), true)!;
    const cookie = makeCookie(
      this.cookieSecret,
      from.addr,
      from.port,
      cookieTime,
      msg.enNonce,
      eph.publicKey,
    );
    out.send.push({
      to: from,
      data: encode({ type: 'COOKIE', enNonce: msg.enNonce, cookieTime, cookie, gwPub: eph.publicKey }),
      unproven: true,
    });
  }

  /** AUTH, checked in the order of docs/protocol.md §6.2. */
  auth(msg: Auth, data: Buffer, from: Endpoint, now: number, out: GatewayResult): void {
    // Until the cookie verifies, the source may be spoofed: the daemon sends these refusals
    // with the lowest priority (and may shed them).
    const refuse = this.refusal(msg, from, out, msg.user, true);
    // 1. Stateless cookie: address, port, age, epoch key.
    const epoch = epochOf(msg.cookieTime * 1000);
    const nowEpoch = epochOf(now);
    if (msg.cookieTime * 1000 > now + TIME_WINDOW_MS) return refuse('bad-cookie', 'cookie from the future');
    const eph = epoch >= nowEpoch - 1 && epoch <= nowEpoch ? this.ephemeral(epoch, false) : undefined;
    // too old, or made before a restart of the gateway: the agent starts over with HELLO
    if (!eph) return refuse('cookie-expired', 'cookie expired; send HELLO again');
    const cookie = makeCookie(
      this.cookieSecret,
      from.addr,
      from.port,
      msg.cookieTime,
      msg.enNonce,
      eph.publicKey,
    );
    if (!constantTimeEqual(cookie, msg.cookie))
      return refuse('bad-cookie', 'cookie does not match this address');
    // The sender received our COOKIE at this address: it is not spoofed.
    out.events.push({ kind: 'source-proven', addr: from.addr });
    this.proven({ msg, data, from, eph, epoch }, now, out);
  }

  /** An AUTH whose cookie is valid: the sender is real. From here on state may be created. */
  private proven(a: Attempt, now: number, out: GatewayResult): void {
    const { msg, data, from, eph, epoch } = a;
    let who = msg.user; // the canonical id once the user proved its secret
    const refuse = (reason: ReasonName, text: string, auth?: { userSecret: Buffer; th: Buffer }) =>
      this.refusal(msg, from, out, who)(reason, text, auth);
    // 2. Duplicate AUTH (retransmission): answer from the cache, never create a second session.
    const cacheKey = msg.cookie.toString('hex');
    const cached = this.authCache.get(cacheKey);
    if (cached) {
      if (cached.auth.equals(data)) out.send.push({ to: from, data: cached.response });
      else refuse('replay', 'cookie already used');
      return;
    }
    // A cookie carries a few AUTHs at most: no flood of guesses on one cookie.
    const uses = this.cookieUses.get(cacheKey);
    if (uses && uses.n >= MAX_AUTH_PER_COOKIE)
      return refuse('replay', `cookie used ${uses.n} times; send HELLO again`);
    if (uses) uses.n++;
    else {
      if (this.cookieUses.size >= MAX_COUNTED_COOKIES) {
        const oldest = this.cookieUses.keys().next().value!;
        this.cookieUses.delete(oldest);
        this.useExpiries.delete(oldest);
      }
      this.cookieUses.set(cacheKey, { n: 1, expiresAt: (epoch + 2) * COOKIE_EPOCH_MS });
      this.useExpiries.set(cacheKey, (epoch + 2) * COOKIE_EPOCH_MS);
    }
    // 3. Freshness of the agent's own timestamp.
    if (Math.abs(msg.timestamp - now) > TIME_WINDOW_MS)
      return refuse('stale-timestamp', 'clock difference > 60 s');
    // 4. User and proofs.
    const user = this.directory.lookupUser(msg.user);
    if (user === FAILED) return refuse('internal', 'directory unavailable');
    if (!user) return refuse('unknown-user', `no user ${msg.user}`);
    if ('refused' in user) return refuse(user.refused, user.text);
    const dh = x25519(eph.privateKey, msg.enPub);
    if (!dh) return refuse('bad-proof', 'invalid ephemeral key');
    const th = transcriptHash(eph.publicKey, data);
    if (!constantTimeEqual(userProof(user.secret, th, dh), msg.userProof))
      return refuse('bad-proof', 'user proof does not verify');
    const auth = { userSecret: user.secret, th };
    const userId = user.id ?? msg.user;
    who = userId;
    if (user.refusal) return refuse(user.refusal.reason, user.refusal.text, auth);
    const group = user.groups.find((g) => g.name === msg.group);
    if (!group) return refuse('not-in-group', `${msg.user} is not a member of ${msg.group}`, auth);
    const key = group.keys.find((k) => k.version === msg.gkVersion);
    const newest = Math.max(...group.keys.map((k) => k.version), -1);
    if (!key) {
      if (msg.gkVersion > newest)
        return refuse(
          'unknown-key-version',
          `group key version ${msg.gkVersion} unknown (newest ${newest})`,
          auth,
        );
      return refuse(
        'stale-key-version',
        `group key version ${msg.gkVersion} retired (current ${newest})`,
        auth,
      );
    }
    if (key.notAfter !== undefined && now > key.notAfter)
      return refuse(
        'stale-key-version',
        `group key version ${msg.gkVersion} expired (current ${newest})`,
        auth,
      );
    if (!constantTimeEqual(groupProof(key.key, th, dh), msg.groupProof))
      return refuse('bad-proof', 'group proof does not verify', auth);
    const userSessions = this.sessions.countOf(userId);
    if (userSessions >= this.maxSessionsPerUser)
      return refuse('rate-limited', `${userId} has ${userSessions} sessions`, auth);
    // 5. Session.
    const secret = deriveSessionSecret(dh, key.key, user.secret, msg.enNonce, msg.cookie, th);
    const { response } = this.sessions.open(
      { user: userId, userDn: user.userDn, group: msg.group, gkVersion: msg.gkVersion, secret, peer: from },
      now,
      out,
    );
    const expiresAt = (epoch + 2) * COOKIE_EPOCH_MS;
    this.authCache.set(cacheKey, { auth: Buffer.from(data), response, expiresAt });
    this.cacheExpiries.set(cacheKey, expiresAt);
  }

  /**
   * Refuses the AUTH and reports the decision (about `user`: the id as sent, or the canonical
   * one); `unproven`: before the cookie verified (the source may be spoofed).
   */
  private refusal(msg: Auth, from: Endpoint, out: GatewayResult, user = msg.user, unproven = false) {
    return (reason: ReasonName, text: string, auth?: { userSecret: Buffer; th: Buffer }): void => {
      const data = handshakeError(msg.enNonce, reason, text, auth);
      out.send.push(unproven ? { to: from, data, unproven } : { to: from, data });
      out.events.push({
        kind: 'decision',
        step: 'auth',
        user,
        group: msg.group,
        in: '',
        en: endpointString(from),
        decision: 'deny',
        reason,
      });
    };
  }

  /** Forgets cached AUTH_OKs and erases epoch keys whose time is over (forward secrecy). */
  poll(now: number): void {
    for (const k of this.cacheExpiries.due(now)) {
      this.authCache.delete(k);
      this.cacheExpiries.delete(k);
    }
    for (const k of this.useExpiries.due(now)) {
      this.cookieUses.delete(k);
      this.useExpiries.delete(k);
    }
    for (const e of this.ephemerals.keys()) if (e < epochOf(now) - 1) this.ephemerals.delete(e);
  }
  nextDeadline(): number | null {
    let d: number | null = null;
    const min = (x: number) => (d = d === null || x < d ? x : d);
    const cached = this.cacheExpiries.next();
    if (cached !== null) min(cached);
    // cookieUses end with their epoch like authCache entries: the epoch deadline below covers them
    for (const e of this.ephemerals.keys()) min((e + 2) * COOKIE_EPOCH_MS); // erase old private keys
    return d;
  }
}
