// AgentControl: the agent (EN) side of the control protocol as a pure, I/O-free state machine.
//
// The agent's I/O layer calls login()/reserve()/takePort()/release(), feeds every datagram from
// the gateway to handleDatagram(), and calls poll() at nextDeadline(). Every call returns the
// datagrams to send (on the control socket, or - for an explicit BIND probe - from the flow's own
// source socket to GGR:t) and events (session up/down, reserved ports with flow keys, ...).
// Session messages go through the session channel (channel.ts), as on the gateway.
// The session itself (state, persistence, requests, session messages) is in agent-session.ts.

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import {
  MAC_LEN,
  MAX_PORTS_PER_RESERVE,
  NONCE_LEN,
  PROOF_LEN,
  PROTOCOL_VERSION,
  type ProtoNumber,
} from './constants.ts';
import type { PooledPort } from './agent-pools.ts';
import { ALWAYS_AUTHENTICATED } from './agent-reasons.ts';
import type { AgentDest, AgentOptions, AgentResult, AgentSessionState, AgentState } from './agent-types.ts';
import { SessionChannel, sessionRef } from './channel.ts';
import { decode, encode, peekPrefix } from './codec.ts';
import {
  constantTimeEqual,
  deriveControlKeys,
  deriveSessionSecret,
  generateEphemeral,
  groupProof,
  refusalTag,
  transcriptHash,
  userProof,
  verifyMessage,
  x25519,
  type ControlKeys,
  type EphemeralKey,
} from './crypto.ts';
import { ProtocolError } from './errors.ts';
import { checkIPv4, checkInName, checkName } from './fields.ts';
import type { Auth, Message, MessageOf } from './messages.ts';
import { Retransmitter } from './retransmit.ts';
import { AgentSession, CONTROL, result } from './agent-session.ts';

/** Agent-side protocol engine: one instance per (gateway, user, group) login. */
export class AgentControl extends AgentSession {
  private readonly o: Required<Omit<AgentOptions, 'randomBytes' | 'vinOf'>>;
  private readonly rnd: (n: number) => Buffer;
  private readonly vinOf: ((inName: string) => string | undefined) | undefined;
  // handshake
  private enNonce = Buffer.alloc(0);
  private auth: { th: Buffer; keys: ControlKeys; secret: Buffer } | null = null;
  private readonly handshake = new Retransmitter<'hello' | 'auth', null>();
  private restarts = 0;

  constructor(opts: AgentOptions) {
    super();
    checkName('user', opts.user);
    checkName('group', opts.group);
    if (opts.userSecret.length < 16)
      throw new ProtocolError('bad-value', 'user secret shorter than 16 bytes');
    this.o = { poolTarget: 4, poolLow: 2, ...opts } as Required<Omit<AgentOptions, 'randomBytes' | 'vinOf'>>;
    if (
      this.o.poolTarget < 1 ||
      this.o.poolTarget > MAX_PORTS_PER_RESERVE ||
      this.o.poolLow >= this.o.poolTarget + 1
    )
      throw new ProtocolError('bad-value', 'pool sizes');
    this.rnd = opts.randomBytes ?? nodeRandomBytes;
    this.vinOf = opts.vinOf;
  }

  get state(): AgentState {
    return this.st;
  }
  get session(): string | null {
    return this.channel?.idHex ?? null;
  }
  /** The session secret (for deriveFlowKeys); null before AUTH_OK. */
  get sessionSecret(): Buffer | null {
    return this.secret;
  }
  poolSize(inName: string, proto: ProtoNumber): number {
    return this.pools.size(inName, proto);
  }
  /** Moves whenever save() would return something else. */
  get changeCount(): number {
    return this.changes;
  }

  /**
   * Goes on with a session save() returned (after a restart of the agent): the state is 'up' and
   * a KEEPALIVE leaves at once. The gateway answers it (the session goes on: no login), or says
   * unknown-session (this side says HELLO, as after a gateway restart), or nothing (the grace of
   * an unreachable gateway applies).
   */
  resume(st: AgentSessionState, now: number): AgentResult {
    this.handshake.clear();
    return this.restore(st, now);
  }

  // -------------------------------------------------------------------------------------------
  // Handshake

  /** Starts (or restarts) the handshake: HELLO. */
  login(now: number): AgentResult {
    const out = result();
    this.resetSession();
    this.restarts = 0;
    this.sendHello(now, out);
    return out;
  }

  private sendHello(now: number, out: AgentResult): void {
    this.st = 'hello';
    this.enNonce = Buffer.from(this.rnd(NONCE_LEN));
    this.auth = null;
    this.handshake.clear();
    const data = encode({ type: 'HELLO', enNonce: this.enNonce });
    this.handshake.add('hello', data, null, now);
    out.send.push({ dest: CONTROL, data });
  }

  /** Ends the session: RELEASE(session), sent once (best effort), local state dropped. */
  logout(now: number): AgentResult {
    const out = result();
    if (this.st === 'up' && this.channel)
      out.send.push({
        dest: CONTROL,
        data: this.seal({ type: 'RELEASE', ack: 0n, scope: 1, proto: 0, t: 0 }, now),
      });
    this.resetSession(true);
    this.handshake.clear();
    this.st = 'idle';
    out.events.push({ kind: 'session-down', reason: 'logout' });
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /**
   * Call when the agent sees a DNS answer for IN `inName` (and whenever it wants a fuller pool):
   * tops the pool of pre-reserved ports up to poolTarget - or up to `need` when that many
   * connections wait for a port now (a burst: up to 16 ports per RESERVE, several in flight).
   * Before the session is up the wish is remembered and sent right after AUTH_OK. The RESERVE
   * carries `vinOf(inName)` (0.0.0.0 if none); if vinOf throws or gives no IPv4 address, nothing
   * is sent and the result has a 'reserve-failed' event (reason internal).
   */
  reserve(inName: string, proto: ProtoNumber, now: number, need = 0): AgentResult {
    const out = result();
    checkInName(inName);
    if (this.st !== 'up') {
      this.pools.want(inName, proto);
      return out;
    }
    const have = this.pools.size(inName, proto, now) + this.pools.reservingCount(inName, proto);
    const want = Math.max(this.o.poolTarget, Math.min(need, MAX_PORTS_PER_RESERVE * 16));
    if (have >= want) return out;
    let vin: string;
    try {
      vin = this.vinOf?.(inName) ?? '0.0.0.0';
      checkIPv4('vin', vin);
    } catch (e) {
      const text = `no valid VIN: ${e instanceof Error ? e.message : String(e)}`.slice(0, 200);
      out.events.push({ kind: 'reserve-failed', inName, proto, reason: 'internal', text });
      return out;
    }
    for (let missing = want - have; missing > 0;) {
      const count = Math.min(MAX_PORTS_PER_RESERVE, missing);
      missing -= count;
      this.pools.addReserving(inName, proto, count);
      this.request(
        { type: 'RESERVE', ack: 0n, proto, count, vin, inName },
        { type: 'RESERVE', inName, proto, count },
        now,
        out,
      );
    }
    return out;
  }

  /**
   * Takes a pre-reserved port for a new flow to `inName` (zero round trips). Returns null when
   * the pool is empty: the I/O layer holds the first packet until a 'reserved' event for this
   * IN (a RESERVE is in flight). Tops the pool up in the background when it runs low.
   */
  takePort(inName: string, proto: ProtoNumber, now: number): { port: PooledPort | null } & AgentResult {
    const port = this.pools.take(inName, proto, now);
    const r = this.pools.size(inName, proto) < this.o.poolLow ? this.reserve(inName, proto, now) : result();
    return { port, ...r };
  }

  /**
   * Port (proto, t) was taken for a new flow outside `takePort` (the agent's engine took it from
   * the ports it was handed: docs/architecture.md). Returns the port (null if it is no longer
   * pooled: released, cleared or expired here) and tops the pool up as `takePort` does.
   */
  takenPort(proto: ProtoNumber, t: number, now: number): { port: PooledPort | null } & AgentResult {
    const port = this.pools.takeExact(proto, t);
    const r =
      port && this.pools.size(port.inName, proto) < this.o.poolLow
        ? this.reserve(port.inName, proto, now)
        : result();
    return { port, ...r };
  }

  /** Every pooled port now (the agent arms them in its engine). */
  pooledPorts(): readonly PooledPort[] {
    return this.pools.all();
  }

  /**
   * Explicit binding probe for a UDP flow (docs/protocol.md §8.2, optional; gsra-agent binds
   * in-band): must be sent from the flow's own socket PEN:s to GGR:t, so that it crosses HR on
   * the flow's exact mapping.
   */
  bind(proto: ProtoNumber, t: number, s: number, now: number): AgentResult {
    const out = result();
    if (this.st !== 'up') return out;
    const dest: AgentDest = { via: 'flow', proto, s, t };
    this.request({ type: 'BIND', ack: 0n, proto, t, s }, { type: 'BIND', proto, t, dest }, now, out);
    return out;
  }

  /** Explicit mapping (paper's step 5, §8.2) once BOUND told the agent GHR:m. */
  map(proto: ProtoNumber, t: number, d: number, ghr: string, m: number, now: number): AgentResult {
    const out = result();
    if (this.st !== 'up') return out;
    this.request({ type: 'MAP', ack: 0n, proto, t, d, ghr, m }, { type: 'MAP', proto, t }, now, out);
    return out;
  }

  /** Releases the reservation of (proto, t) (flow closed, or an unused pooled port). */
  release(proto: ProtoNumber, t: number, now: number): AgentResult {
    const out = result();
    if (this.st !== 'up') return out;
    this.pools.drop(proto, t);
    this.request({ type: 'RELEASE', ack: 0n, scope: 0, proto, t }, { type: 'RELEASE', proto, t }, now, out);
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming

  /** Handles one datagram from the gateway. Never throws on bad input. */
  handleDatagram(data: Buffer, now: number): AgentResult {
    const out = result();
    let msg: Message;
    try {
      const { version } = peekPrefix(data);
      if (version !== PROTOCOL_VERSION) {
        // e.g. an older gateway's unsupported-version refusal: unauthenticated, so only reported
        out.events.push({ kind: 'dropped', reason: 'unsupported-version', detail: `version ${version}` });
        return out;
      }
      msg = decode(data);
    } catch (e) {
      out.events.push({
        kind: 'dropped',
        reason: 'malformed',
        detail: e instanceof ProtocolError ? e.code : 'error',
      });
      return out;
    }
    switch (msg.type) {
      case 'COOKIE':
        this.onCookie(msg, now, out);
        break;
      case 'HANDSHAKE_ERROR':
        this.onHandshakeError(msg, data, now, out);
        break;
      case 'AUTH_OK':
        this.onAuthOk(msg, data, now, out);
        break;
      case 'HELLO':
      case 'AUTH':
        out.events.push({ kind: 'dropped', reason: 'wrong-direction', detail: msg.type });
        break;
      default:
        this.onSessionMessage(msg, data, now, out);
    }
    return out;
  }

  private onCookie(msg: MessageOf<'COOKIE'>, now: number, out: AgentResult): void {
    if (this.st !== 'hello' || !constantTimeEqual(msg.enNonce, this.enNonce)) {
      out.events.push({ kind: 'dropped', reason: 'unexpected-cookie' });
      return;
    }
    const eph: EphemeralKey = generateEphemeral();
    const dh = x25519(eph.privateKey, msg.gwPub);
    if (!dh) {
      // forged or broken COOKIE: keep waiting (HELLO is still being retransmitted)
      out.events.push({ kind: 'dropped', reason: 'bad-gateway-key' });
      return;
    }
    this.handshake.take('hello');
    // Learn the gateway's clock (1 s resolution) so our timestamps fall in its ±60 s window.
    this.clockOffset = msg.cookieTime * 1000 + 500 - now;
    const auth: Auth = {
      type: 'AUTH',
      enNonce: this.enNonce,
      cookieTime: msg.cookieTime,
      cookie: msg.cookie,
      timestamp: this.gwNow(now),
      enPub: eph.publicKey,
      gkVersion: this.o.groupKey.version,
      user: this.o.user,
      group: this.o.group,
      userProof: Buffer.alloc(PROOF_LEN),
      groupProof: Buffer.alloc(PROOF_LEN),
    };
    const bytes = encode(auth);
    const th = transcriptHash(msg.gwPub, bytes);
    userProof(this.o.userSecret, th, dh).copy(bytes, bytes.length - 2 * PROOF_LEN);
    groupProof(this.o.groupKey.key, th, dh).copy(bytes, bytes.length - PROOF_LEN);
    const gk = this.o.groupKey.key;
    const secret = deriveSessionSecret(dh, gk, this.o.userSecret, this.enNonce, msg.cookie, th);
    this.auth = { th, keys: deriveControlKeys(secret), secret };
    this.st = 'auth';
    this.handshake.add('auth', bytes, null, now);
    out.send.push({ dest: CONTROL, data: bytes });
  }

  private onHandshakeError(
    msg: MessageOf<'HANDSHAKE_ERROR'>,
    data: Buffer,
    now: number,
    out: AgentResult,
  ): void {
    if (msg.reason === 'unknown-session' && this.channel && this.st === 'up') {
      if (!constantTimeEqual(sessionRef(this.channel.id), msg.ref))
        return void out.events.push({ kind: 'dropped', reason: 'unexpected-error' });
      const proven =
        msg.authKind === 2 && this.resetToken !== null && constantTimeEqual(msg.tag, this.resetToken);
      if (!proven) {
        // Anyone who saw our session id can write this. Ask the gateway instead: a KEEPALIVE
        // now; if the session is really gone, it goes unanswered and the session ends (§6.6).
        out.events.push({ kind: 'dropped', reason: 'unauthenticated-teardown' });
        this.unprovenRefusal = true;
        out.send.push(...this.keepalive(now).send);
        return;
      }
      // the gateway proved it lost our session (restart): log in again
      this.resetSession();
      out.events.push({ kind: 'session-down', reason: 'unknown-session' });
      this.sendHello(now, out);
      return;
    }
    if ((this.st !== 'hello' && this.st !== 'auth') || !constantTimeEqual(msg.ref, this.enNonce)) {
      out.events.push({ kind: 'dropped', reason: 'unexpected-error', detail: msg.reason });
      return;
    }
    let authenticated = false;
    if (msg.authKind === 0 && ALWAYS_AUTHENTICATED.has(msg.reason)) {
      // the gateway MACs these refusals; an unauthenticated one is forged: wait for the real answer
      out.events.push({ kind: 'dropped', reason: 'unauthenticated-refusal', detail: msg.reason });
      return;
    }
    if (msg.authKind === 1) {
      const tag = this.auth
        ? refusalTag(this.o.userSecret, this.auth.th, data.subarray(0, data.length - MAC_LEN))
        : null;
      if (!tag || !constantTimeEqual(tag, msg.tag)) {
        out.events.push({ kind: 'dropped', reason: 'bad-refusal-tag', detail: msg.reason });
        return;
      }
      authenticated = true;
    }
    if ((msg.reason === 'cookie-expired' || msg.reason === 'stale-timestamp') && this.restarts < 2) {
      this.restarts++; // our AUTH arrived too late, or our clock guess was off: one more round
      this.sendHello(now, out);
      return;
    }
    this.handshake.clear();
    this.st = 'failed';
    out.events.push({ kind: 'refused', step: 'auth', reason: msg.reason, text: msg.text, authenticated });
  }

  private onAuthOk(msg: MessageOf<'AUTH_OK'>, data: Buffer, now: number, out: AgentResult): void {
    if (this.st !== 'auth' || !this.auth || !verifyMessage(data, this.auth.keys.gwToEn)) {
      out.events.push({ kind: 'dropped', reason: this.st === 'up' ? 'duplicate' : 'bad-auth-ok' });
      return;
    }
    this.handshake.clear();
    const keys = this.auth.keys;
    this.channel = new SessionChannel(
      msg.sessionId,
      { send: keys.enToGw, receive: keys.gwToEn },
      0,
      () => {},
      this.touch,
    );
    this.channel.markSeen(msg.seq);
    this.secret = this.auth.secret;
    this.resetToken = Buffer.from(msg.resetToken);
    this.st = 'up';
    this.keepaliveEveryMs = msg.keepaliveInterval * 1000;
    this.reservationLifetimeMs = msg.reservationLifetime * 1000;
    this.unreachableGraceMs = this.o.unreachableGraceMs ?? this.reservationLifetimeMs;
    this.unreachableSince = null;
    this.nextKeepaliveAt = now + this.keepaliveEveryMs;
    out.events.push({
      kind: 'session-up',
      sessionId: this.channel.idHex,
      sessionLifetime: msg.sessionLifetime,
      keepaliveInterval: msg.keepaliveInterval,
    });
    for (const w of this.pools.takeWanted()) {
      const r = this.reserve(w.inName, w.proto, now);
      out.send.push(...r.send);
      out.events.push(...r.events);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  /** Retransmissions, timeouts and keepalives due at `now`. Call at nextDeadline(). */
  poll(now: number): AgentResult {
    const out = result();
    const hs = this.handshake.poll(now);
    for (const { item } of hs.resend) out.send.push({ dest: CONTROL, data: item.data });
    if (hs.expired.length) {
      this.st = 'failed';
      out.events.push({ kind: 'session-down', reason: 'timeout' });
      return out;
    }
    if (this.st !== 'up' || !this.channel) return out;
    const rq = this.channel.poll(now);
    for (const { item } of rq.resend) out.send.push({ dest: item.info.dest, data: item.data });
    for (const { item } of rq.expired) {
      const info = item.info;
      if (info.type === 'KEEPALIVE') {
        // The gateway does not answer: it may be restarting (it keeps our session across that)
        // or the link is down. Keep the session and its flows, and ask again at once; only a
        // gateway silent for the whole grace ends the session here - and is told once, best
        // effort, so a session it still holds does not linger until its idle timeout.
        if (this.unreachableSince === null) {
          this.unreachableSince = now;
          out.events.push({ kind: 'gateway-unreachable' });
        }
        // Something answers for the gateway (an unproven unknown-session: a gateway restarted
        // without our session and its reset key): not a gateway that is restarting - no grace.
        if (this.unprovenRefusal || now - this.unreachableSince >= this.unreachableGraceMs) {
          out.send.push({
            dest: CONTROL,
            data: this.seal({ type: 'RELEASE', ack: 0n, scope: 1, proto: 0, t: 0 }, now),
          });
          this.resetSession();
          this.st = 'idle';
          out.events.push({ kind: 'session-down', reason: 'timeout' });
          return out;
        }
        this.nextKeepaliveAt = now;
        continue;
      }
      if (info.type === 'RESERVE' && info.inName && info.proto) {
        this.pools.addReserving(info.inName, info.proto, -(info.count ?? 0));
        const { inName, proto } = info;
        out.events.push({ kind: 'reserve-failed', inName, proto, reason: 'timeout', text: 'no answer' });
      } else
        out.events.push({ kind: 'request-failed', type: info.type, reason: 'timeout', text: 'no answer' });
    }
    this.drain(now, out);
    if (now >= this.nextKeepaliveAt) out.send.push(...this.keepalive(now).send);
    return out;
  }

  /** The earliest time poll() has something to do, or null. */
  nextDeadline(): number | null {
    const c = [
      this.handshake.nextDeadline(),
      this.channel?.nextDeadline() ?? null,
      this.st === 'up' ? this.nextKeepaliveAt : null,
    ].filter((x): x is number => x !== null);
    return c.length ? Math.min(...c) : null;
  }
}
