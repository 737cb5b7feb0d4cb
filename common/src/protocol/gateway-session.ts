// The gateway's sessions (docs/protocol.md §4.1, §10, §11): each established by an AUTH, each with
// its session channel. A session message is accepted through the channel (MAC, timestamp, replay
// window; a duplicate is answered from the cache, never executed twice), then handled here:
// KEEPALIVE, RELEASE, ACK, ERROR; RESERVE, BIND and MAP go to the reservation phase (gateway-
// reservations.ts), which works on the reservation table.

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { MAX_TEXT_LEN, type ReasonName } from './constants.ts';
import { SessionChannel, sessionRef, type Body } from './channel.ts';
import { deriveControlKeys, resetToken } from './crypto.ts';
import { Deadlines } from './deadlines.ts';
import type { Directory } from './gateway-directory.ts';
import { handshakeError } from './gateway-handshake.ts';
import type { ReservationPhase } from './gateway-reservations.ts';
import type { SessionRecord, StateChanges } from './gateway-state.ts';
import { endpointString, type Endpoint, type GatewayConfig, type GatewayResult } from './gateway-types.ts';
import type { SessionMessage } from './messages.ts';

export interface GatewaySession {
  readonly idHex: string;
  readonly user: string;
  readonly userDn: string;
  readonly group: string;
  readonly gkVersion: number;
  /** The session secret: the root of its control keys and of every flow's keys. */
  readonly secret: Buffer;
  /** Where the agent's control messages come from (follows the newest authenticated source). */
  peer: Endpoint;
  /** Absolute end of the session. */
  readonly expiresAt: number;
  /** Last authenticated message (the idle timer). */
  lastSeen: number;
  /** The flow-key serial of the next reserved port. */
  nextSerial: number;
  readonly channel: SessionChannel<{ type: string }>;
}

/** An ERROR; its text cut to the 200 bytes the wire allows (on a character boundary). */
export const errorBody = (ack: bigint, reason: ReasonName, text: string): Body => ({
  type: 'ERROR',
  ack,
  reason,
  text:
    Buffer.byteLength(text) <= MAX_TEXT_LEN
      ? text
      : Buffer.from(text)
          .subarray(0, MAX_TEXT_LEN)
          .toString()
          .replace(/\uFFFD$/, ''),
});

/** Seals a message of session s to its agent. */
export function sendTo(s: GatewaySession, body: Body, now: number, out: GatewayResult): void {
  out.send.push({ to: s.peer, data: s.channel.seal(body, now) });
}
/** Seals a message the agent must ACK: retransmitted until it does (§10.1). */
export function sendReliably(s: GatewaySession, body: Body, now: number, out: GatewayResult): void {
  out.send.push({ to: s.peer, data: s.channel.request(body, now, { type: body.type }, now) });
}

export class Sessions {
  /** How many live sessions have their agent at each address (their answers are deliverable). */
  private readonly peerAddrs = new Map<string, number>();
  /** Each session by when it next needs the clock: its end, its idle time, a retransmission. */
  private readonly timers = new Deadlines<GatewaySession>();
  /** How many live sessions each user has (AUTH checks the limit on every login). */
  private readonly perUser = new Map<string, number>();

  constructor(
    readonly byId: Map<string, GatewaySession>,
    private readonly phase: ReservationPhase,
    private readonly directory: Directory,
    private readonly cfg: GatewayConfig,
    private readonly changes: StateChanges,
    private readonly resetKey: Buffer,
    private readonly rnd: (n: number) => Buffer = nodeRandomBytes,
  ) {}

  /** Is `addr` the current address of a live session's agent? */
  hasPeerAt(addr: string): boolean {
    return this.peerAddrs.has(addr);
  }
  private countPeer(addr: string, d: 1 | -1): void {
    const n = (this.peerAddrs.get(addr) ?? 0) + d;
    if (n > 0) this.peerAddrs.set(addr, n);
    else this.peerAddrs.delete(addr);
  }

  /** A session's channel; every change of it is a change of the session for the store. */
  private channel(id: Buffer, secret: Buffer, s: () => GatewaySession): SessionChannel<{ type: string }> {
    const keys = deriveControlKeys(secret);
    return new SessionChannel(
      id,
      { send: keys.gwToEn, receive: keys.enToGw },
      this.cfg.responseCacheSize,
      () => this.rearm(s()),
      () => this.changes.session(s()),
    );
  }

  countOf(user: string): number {
    return this.perUser.get(user) ?? 0;
  }
  private countUser(user: string, d: 1 | -1): void {
    const n = (this.perUser.get(user) ?? 0) + d;
    if (n > 0) this.perUser.set(user, n);
    else this.perUser.delete(user);
  }

  /** When session s next needs the clock (call after anything that moves one of its times). */
  rearm(s: GatewaySession): void {
    if (this.byId.get(s.idHex) !== s) return;
    const idle = s.lastSeen + this.cfg.sessionIdleSec * 1000;
    const retransmit = s.channel.nextDeadline();
    this.timers.set(s, Math.min(s.expiresAt, idle, retransmit ?? Infinity));
  }

  /** A new session after a successful AUTH: its AUTH_OK (seq 1) is sent and returned. */
  open(
    who: Pick<GatewaySession, 'user' | 'userDn' | 'group' | 'gkVersion' | 'secret' | 'peer'>,
    now: number,
    out: GatewayResult,
  ): { session: GatewaySession; response: Buffer } {
    const id = this.rnd(8);
    const s: GatewaySession = {
      ...who,
      idHex: id.toString('hex'),
      peer: { ...who.peer },
      expiresAt: now + this.cfg.sessionLifetimeSec * 1000,
      lastSeen: now,
      nextSerial: 0,
      channel: this.channel(id, who.secret, () => s),
    };
    this.byId.set(s.idHex, s);
    this.countPeer(s.peer.addr, 1);
    this.countUser(s.user, 1);
    this.rearm(s);
    this.changes.session(s);
    const response = s.channel.seal(
      {
        type: 'AUTH_OK',
        ack: 0n,
        sessionLifetime: this.cfg.sessionLifetimeSec,
        keepaliveInterval: this.cfg.keepaliveIntervalSec,
        reservationLifetime: this.cfg.reservationLifetimeSec,
        resetToken: resetToken(this.resetKey, id),
      },
      now,
    );
    const en = endpointString(s.peer);
    out.send.push({ to: s.peer, data: response });
    out.events.push(
      {
        kind: 'decision',
        step: 'auth',
        user: s.user,
        group: s.group,
        in: '',
        en,
        decision: 'allow',
        reason: 'ok',
        sessionId: s.idHex,
      },
      {
        kind: 'session-up',
        sessionId: s.idHex,
        user: s.user,
        userDn: s.userDn,
        group: s.group,
        gkVersion: s.gkVersion,
        en,
      },
    );
    return { session: s, response };
  }

  /** A session message from `from`, received on local port `localPort` (4430, or t for a BIND probe). */
  handle(
    msg: SessionMessage,
    data: Buffer,
    from: Endpoint,
    now: number,
    localPort: number,
    out: GatewayResult,
  ): void {
    const en = endpointString(from);
    const s = this.byId.get(msg.sessionId.toString('hex'));
    if (!s) {
      // No session key to MAC it with: the session's reset token, which only the gateway can
      // compute (and the agent got in AUTH_OK), proves it (§6.6). ref = session id.
      const reply = handshakeError(sessionRef(msg.sessionId), 'unknown-session', '', {
        resetToken: resetToken(this.resetKey, msg.sessionId),
      });
      if (reply.length <= data.length) out.send.push({ to: from, data: reply, unproven: true });
      out.events.push({ kind: 'dropped', from: en, reason: 'unknown-session' });
      return;
    }
    const fromPeer = from.addr === s.peer.addr && from.port === s.peer.port;
    const refuse = (
      reason: 'bad-mac' | 'stale-timestamp' | 'replay',
      text: string,
      ack: bigint,
      detail: string,
    ) => {
      out.events.push({ kind: 'dropped', from: en, reason, detail });
      // errors about unauthenticated input go only to the session's known peer (no reflection)
      if (fromPeer) sendTo(s, errorBody(ack, reason, text), now, out);
    };
    if (!s.channel.authentic(data)) return refuse('bad-mac', 'message authentication failed', 0n, s.idHex);
    if (msg.type === 'AUTH_OK') {
      out.events.push({ kind: 'dropped', from: en, reason: 'wrong-direction', detail: msg.type });
      return;
    }
    const admission = s.channel.admit(msg, now);
    if (admission === 'stale-timestamp')
      return refuse('stale-timestamp', 'clock difference > 60 s', msg.seq, s.idHex);
    if (admission === 'duplicate') {
      const cached = s.channel.answered(msg.seq);
      if (cached) return void out.send.push({ to: from, data: cached }); // a request answered before
      if (msg.type === 'ACK') return; // a duplicated ACK needs no answer
      const text = `sequence number ${msg.seq} already seen or too old`;
      return refuse('replay', text, msg.seq, `${s.idHex} seq ${msg.seq}`);
    }
    s.lastSeen = now;
    this.rearm(s);
    if (localPort === this.cfg.controlPort && !fromPeer && msg.seq === s.channel.highestSeen) {
      // the home NAT re-mapped the control flow (or EN roamed): follow the newest authenticated source
      out.events.push({ kind: 'peer-moved', sessionId: s.idHex, from: endpointString(s.peer), to: en });
      this.countPeer(s.peer.addr, -1);
      s.peer = { ...from };
      this.countPeer(s.peer.addr, 1);
    }
    const answer = this.dispatch(s, msg, from, now, localPort, out);
    if (answer) out.send.push({ to: s.peer, data: s.channel.answer(msg.seq, s.channel.seal(answer, now)) });
    if (msg.type === 'RELEASE' && msg.scope === 1) this.end(s, 'released', out);
  }

  /** What a new, authentic message does; returns the answer to send (and cache), if any. */
  private dispatch(
    s: GatewaySession,
    msg: SessionMessage,
    from: Endpoint,
    now: number,
    localPort: number,
    out: GatewayResult,
  ): Body | undefined {
    const r = this.phase;
    switch (msg.type) {
      case 'RESERVE':
        return r.reserve(s, msg, now, out);
      case 'BIND':
        return localPort === this.cfg.controlPort
          ? // probe of the control flow itself: report its mapping, record nothing
            { type: 'BOUND', ack: msg.seq, proto: msg.proto, t: msg.t, ghr: from.addr, m: from.port, d: 0 }
          : r.bind(s, msg, from, localPort, out);
      case 'MAP':
        return r.map(s, msg, now, out);
      case 'KEEPALIVE':
        r.table.renew(s.idHex, now);
        return {
          type: 'KEEPALIVE_ACK',
          ack: msg.seq,
          sessionLifetime: Math.max(0, Math.floor((s.expiresAt - now) / 1000)),
          reservations: Math.min(0xffff, r.table.countOf(s.idHex)),
          observed: from.addr,
          observedPort: from.port,
        };
      case 'RELEASE':
        if (msg.scope === 0) r.release(s, msg.proto as 6 | 17, msg.t, out); // idempotent: unknown t too
        return { type: 'ACK', ack: msg.seq };
      case 'ACK': {
        const p = s.channel.settle(msg.ack);
        if (p) out.events.push({ kind: 'delivered', sessionId: s.idHex, type: p.info.type, seq: msg.ack });
        return undefined;
      }
      case 'ERROR':
        out.events.push({ kind: 'agent-error', sessionId: s.idHex, reason: msg.reason, text: msg.text });
        s.channel.settle(msg.ack);
        return undefined;
      default:
        out.events.push({
          kind: 'dropped',
          from: endpointString(from),
          reason: 'wrong-direction',
          detail: msg.type,
        });
        return undefined;
    }
  }

  /**
   * Puts back a session a store kept (a restart), as it was but for its idle timer, which starts
   * again at `now`; null if its lifetime is over.
   */
  restore(rec: SessionRecord, now: number): GatewaySession | null {
    if (now >= rec.expiresAt || this.byId.has(rec.id)) return null;
    const secret = Buffer.from(rec.secret, 'base64');
    const s: GatewaySession = {
      idHex: rec.id,
      user: rec.user,
      userDn: rec.userDn,
      group: rec.group,
      gkVersion: rec.gkVersion,
      secret,
      peer: { ...rec.peer },
      expiresAt: rec.expiresAt,
      lastSeen: now,
      nextSerial: rec.nextSerial,
      channel: this.channel(Buffer.from(rec.id, 'hex'), secret, () => s),
    };
    s.channel.restore(rec.channel);
    this.byId.set(s.idHex, s);
    this.countPeer(s.peer.addr, 1);
    this.countUser(s.user, 1);
    this.rearm(s);
    return s;
  }

  end(s: GatewaySession, reason: 'released' | 'expired' | 'idle', out: GatewayResult): void {
    this.phase.endAll(s, reason === 'released' ? 'released' : 'expired', out);
    s.channel.close();
    if (this.byId.delete(s.idHex)) {
      this.countPeer(s.peer.addr, -1);
      this.countUser(s.user, -1);
    }
    this.timers.delete(s);
    this.changes.sessionEnded(s.idHex);
    out.events.push({ kind: 'session-down', sessionId: s.idHex, user: s.user, reason });
  }

  /** Ends sessions past their absolute lifetime or idle too long. */
  expire(now: number, out: GatewayResult): void {
    for (const s of this.timers.due(now)) {
      if (now >= s.expiresAt) this.end(s, 'expired', out);
      else if (now - s.lastSeen >= this.cfg.sessionIdleSec * 1000) this.end(s, 'idle', out);
    }
  }
  /** Retransmits the gateway's own requests (BOUND, FTP_ALIAS) and reports the undelivered. */
  retransmit(now: number, out: GatewayResult): void {
    for (const s of this.timers.due(now)) {
      const { resend, expired } = s.channel.poll(now);
      for (const { item } of resend) out.send.push({ to: s.peer, data: item.data });
      for (const { item } of expired)
        out.events.push({ kind: 'undelivered', sessionId: s.idHex, type: item.info.type });
    }
  }
  /** The earliest time a session needs the clock, or null (O(1): see Deadlines). */
  nextDeadline(): number | null {
    return this.timers.next();
  }
}
