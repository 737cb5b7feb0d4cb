// AgentSession: the agent's session once AUTH_OK has set it up (or resume() has brought it back),
// the part of AgentControl (agent-control.ts) that lives on the session channel (channel.ts):
// the session's state and its persistence (save/restore), requests and their queue, KEEPALIVE,
// and the gateway's session messages (answers, BOUND and FTP_ALIAS on its own, ERROR).
// AgentControl extends it with the handshake, the public calls and the timers.

import { MAX_REQUESTS_IN_FLIGHT, type ProtoNumber, type ReasonName } from './constants.ts';
import { PortPools, type PooledPort } from './agent-pools.ts';
import { POLICY_REFUSALS, SESSION_ENDING } from './agent-reasons.ts';
import type { AgentDest, AgentResult, AgentSessionState, AgentState } from './agent-types.ts';
import { SessionChannel, type Body } from './channel.ts';
import { deriveControlKeys, deriveFlowKeys, deriveFlowKeysMany } from './crypto.ts';
import type { SessionMessage } from './messages.ts';

/** What the agent remembers about a request it sent (and retransmits until answered). */
export interface RequestInfo {
  type: string;
  inName?: string;
  proto?: ProtoNumber;
  /** RESERVE: how many ports it asked for. */
  count?: number;
  t?: number;
  dest: AgentDest;
}

export const result = (): AgentResult => ({ send: [], events: [] });
export const CONTROL: AgentDest = { via: 'control' };

/** The session half of AgentControl (see agent-control.ts); not used on its own. */
export class AgentSession {
  protected st: AgentState = 'idle';
  /** gateway clock - local clock (ms), learned from COOKIE. */
  protected clockOffset = 0;
  protected channel: SessionChannel<RequestInfo> | null = null;
  /** Requests waiting for room among those in flight (see request()). */
  protected queued: Array<{ body: Body; info: RequestInfo }> = [];
  protected secret: Buffer | null = null;
  /** The session's reset token (AUTH_OK): only a refusal carrying it ends the session (§6.6). */
  protected resetToken: Buffer | null = null;
  protected keepaliveEveryMs = 25_000;
  protected reservationLifetimeMs = 120_000;
  protected nextKeepaliveAt = 0;
  /** Since when KEEPALIVEs go unanswered (null: the gateway answers). */
  protected unreachableSince: number | null = null;
  /** An unknown-session refusal without the reset token came since the session was last answered. */
  protected unprovenRefusal = false;
  /** How long the session is kept while the gateway does not answer (a restart, a lost link). */
  protected unreachableGraceMs = 120_000;
  /** Counts changes of what save() returns (the daemon writes its store when it moved). */
  protected changes = 0;
  protected readonly touch = () => void this.changes++;
  /** Our public address and port as the gateway last saw the control channel (KEEPALIVE_ACK). */
  protected observed: string | null = null;
  protected readonly pools = new PortPools(this.touch);

  /**
   * What the agent keeps so that a restart of the agent goes on with the same session (no new
   * login): the session's secret and channel numbers, timers, and the pooled ports (their keys are
   * derived again). Null when no session is up.
   */
  save(): AgentSessionState | null {
    if (this.st !== 'up' || !this.channel || !this.secret) return null;
    return {
      sessionId: this.channel.idHex,
      secret: this.secret.toString('base64'),
      channel: this.channel.save(),
      clockOffset: this.clockOffset,
      keepaliveEveryMs: this.keepaliveEveryMs,
      reservationLifetimeMs: this.reservationLifetimeMs,
      unreachableGraceMs: this.unreachableGraceMs,
      pools: this.pools.all().map(({ keys: _keys, ...p }) => p),
      ...(this.resetToken ? { resetToken: this.resetToken.toString('base64') } : {}),
    };
  }

  /** resume() without the handshake: the session state save() returned, then a KEEPALIVE. */
  protected restore(st: AgentSessionState, now: number): AgentResult {
    const out = result();
    this.resetSession(true);
    const secret = Buffer.from(st.secret, 'base64');
    const keys = deriveControlKeys(secret);
    this.channel = new SessionChannel(
      Buffer.from(st.sessionId, 'hex'),
      { send: keys.enToGw, receive: keys.gwToEn },
      0,
      () => {},
      this.touch,
    );
    this.channel.restore(st.channel);
    this.secret = secret;
    this.clockOffset = st.clockOffset;
    this.keepaliveEveryMs = st.keepaliveEveryMs;
    this.reservationLifetimeMs = st.reservationLifetimeMs;
    this.unreachableGraceMs = st.unreachableGraceMs;
    this.unreachableSince = null;
    this.resetToken = st.resetToken ? Buffer.from(st.resetToken, 'base64') : null;
    const flowKeys = deriveFlowKeysMany(secret, st.pools);
    this.pools.add(st.pools.map((p, i) => ({ ...p, keys: flowKeys[i]! })));
    this.st = 'up';
    out.events.push({
      kind: 'session-up',
      sessionId: this.channel.idHex,
      sessionLifetime: 0,
      keepaliveInterval: Math.round(this.keepaliveEveryMs / 1000),
      resumed: true,
    });
    out.send.push(...this.keepalive(now).send);
    return out;
  }

  /** Drops the session state; the pools it had are refilled by the next session (unless logout). */
  protected resetSession(forget = false): void {
    this.observed = null;
    this.pools.reset(forget);
    this.channel?.close();
    this.channel = null;
    this.queued = [];
    this.secret = null;
    this.resetToken = null;
    this.unreachableSince = null;
    this.unprovenRefusal = false;
    this.touch();
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  protected gwNow(now: number): number {
    return Math.max(0, Math.round(now + this.clockOffset));
  }
  protected seal(body: Body, now: number): Buffer {
    return this.channel!.seal(body, this.gwNow(now));
  }
  /**
   * Sends a request, or queues it while MAX_REQUESTS_IN_FLIGHT are unanswered (a KEEPALIVE never
   * waits: it tells whether the gateway answers at all). Queued requests leave in order as
   * answers come in (drain).
   */
  protected request(
    body: Body,
    info: Omit<RequestInfo, 'dest'> & { dest?: AgentDest },
    now: number,
    out: AgentResult,
  ) {
    const dest = info.dest ?? CONTROL;
    if (
      body.type !== 'KEEPALIVE' &&
      (this.queued.length || this.channel!.pending.size >= MAX_REQUESTS_IN_FLIGHT)
    )
      return void this.queued.push({ body, info: { ...info, dest } });
    out.send.push({ dest, data: this.channel!.request(body, this.gwNow(now), { ...info, dest }, now) });
  }
  protected drain(now: number, out: AgentResult): void {
    while (this.channel && this.queued.length && this.channel.pending.size < MAX_REQUESTS_IN_FLIGHT) {
      const { body, info } = this.queued.shift()!;
      out.send.push({ dest: info.dest, data: this.channel.request(body, this.gwNow(now), info, now) });
    }
  }

  /** Sends a KEEPALIVE now (poll() does so every keepaliveInterval by itself). */
  keepalive(now: number): AgentResult {
    const out = result();
    if (this.st !== 'up' || !this.channel) return out;
    this.nextKeepaliveAt = now + this.keepaliveEveryMs;
    const pending = this.channel.pending;
    if (!pending.keys().some((k) => pending.get(k)?.info.type === 'KEEPALIVE'))
      this.request({ type: 'KEEPALIVE', ack: 0n }, { type: 'KEEPALIVE' }, now, out);
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Session messages from the gateway

  protected onSessionMessage(msg: SessionMessage, data: Buffer, now: number, out: AgentResult): void {
    const ch = this.channel;
    if (this.st !== 'up' || !ch || !ch.belongs(msg.sessionId)) {
      out.events.push({ kind: 'dropped', reason: 'no-session', detail: msg.type });
      return;
    }
    if (!ch.authentic(data))
      return void out.events.push({ kind: 'dropped', reason: 'bad-mac', detail: msg.type });
    const admission = ch.admit(msg, this.gwNow(now));
    if (admission === 'stale-timestamp')
      return void out.events.push({ kind: 'dropped', reason: 'stale-timestamp', detail: msg.type });
    const gatewayRequest = msg.ack === 0n && (msg.type === 'BOUND' || msg.type === 'FTP_ALIAS');
    if (gatewayRequest) {
      // answered every time: a duplicate means our first ACK was lost; reported only once
      out.send.push({ dest: CONTROL, data: this.seal({ type: 'ACK', ack: msg.seq }, now) });
      if (admission === 'new') this.onGatewayRequest(msg, now, out);
      return;
    }
    if (admission === 'duplicate')
      return void out.events.push({ kind: 'dropped', reason: 'duplicate', detail: msg.type });
    // A retransmission the gateway had already taken, when its answer is gone from the gateway's
    // cache: the first answer is on its way or lost (then the request times out); not a refusal.
    const pending = ch.pending.get(msg.ack);
    if (msg.type === 'ERROR' && msg.reason === 'replay' && pending && pending.tries > 1)
      return void out.events.push({
        kind: 'dropped',
        reason: 'duplicate',
        detail: 'replay refusal of a retransmission',
      });
    const req = ch.settle(msg.ack);
    this.drain(now, out);
    if (!req) {
      if (msg.type === 'ERROR') this.onError(msg.reason, msg.text, undefined, out);
      else out.events.push({ kind: 'dropped', reason: 'unsolicited', detail: msg.type });
      return;
    }
    this.onAnswer(msg, req.info, now, out);
  }

  /** BOUND (in-band binding confirmed) or FTP_ALIAS, sent by the gateway on its own. */
  protected onGatewayRequest(msg: SessionMessage, now: number, out: AgentResult): void {
    if (msg.type === 'BOUND')
      out.events.push({ kind: 'bound', proto: msg.proto, t: msg.t, ghr: msg.ghr, m: msg.m, d: msg.d });
    else if (msg.type === 'FTP_ALIAS') {
      const port: PooledPort = {
        inName: '',
        proto: 6,
        t: msg.dataT,
        serial: msg.serial,
        keys: deriveFlowKeys(this.secret!, 6, msg.dataT, msg.serial),
        expiresAt: now + msg.lifetime * 1000,
      };
      out.events.push({ kind: 'ftp-alias', ctrlT: msg.ctrlT, aliasPort: msg.aliasPort, port });
    }
  }

  /** The answer to one of our requests. */
  protected onAnswer(msg: SessionMessage, info: RequestInfo, now: number, out: AgentResult): void {
    switch (msg.type) {
      case 'RESERVED': {
        this.pools.addReserving(info.inName!, info.proto!, -(info.count ?? 0));
        const ids = msg.ports.map((t, i) => ({ proto: msg.proto, t, serial: msg.serial + i }));
        const keys = deriveFlowKeysMany(this.secret!, ids);
        const ports = ids.map((id, i) => ({
          inName: msg.inName,
          ...id,
          keys: keys[i]!,
          expiresAt: now + msg.lifetime * 1000,
        }));
        this.pools.add(ports);
        out.events.push({ kind: 'reserved', inName: msg.inName, proto: msg.proto, ports });
        return;
      }
      case 'BOUND':
        out.events.push({ kind: 'bound', proto: msg.proto, t: msg.t, ghr: msg.ghr, m: msg.m, d: msg.d });
        return;
      case 'MAPPED':
        out.events.push({ kind: 'mapped', proto: msg.proto, t: msg.t, d: msg.d, lifetime: msg.lifetime });
        return;
      case 'KEEPALIVE_ACK': {
        this.pools.renew(now + this.reservationLifetimeMs);
        this.unprovenRefusal = false;
        if (this.unreachableSince !== null) {
          out.events.push({ kind: 'gateway-reachable', afterMs: now - this.unreachableSince });
          this.unreachableSince = null;
        }
        // The home NAT mapped the control channel elsewhere (it lost its mappings, or EN moved):
        // every data flow's mapping may have moved too (docs/pccom.md §6.1).
        const seen = endpointText(msg.observed, msg.observedPort);
        if (this.observed !== null && this.observed !== seen)
          out.events.push({ kind: 'address-changed', from: this.observed, to: seen });
        this.observed = seen;
        return;
      }
      case 'ACK':
        if (info.type === 'RELEASE' && info.proto !== undefined && info.t !== undefined)
          out.events.push({ kind: 'released', proto: info.proto, t: info.t });
        return;
      case 'ERROR':
        this.onError(msg.reason, msg.text, info, out);
        return;
      default:
        out.events.push({ kind: 'dropped', reason: 'unexpected', detail: msg.type });
    }
  }

  protected onError(reason: ReasonName, text: string, info: RequestInfo | undefined, out: AgentResult): void {
    if (info?.type === 'RESERVE' && info.inName && info.proto) {
      this.pools.addReserving(info.inName, info.proto, -(info.count ?? 0));
      out.events.push({ kind: 'reserve-failed', inName: info.inName, proto: info.proto, reason, text });
    } else if (info) {
      out.events.push({ kind: 'request-failed', type: info.type, reason, text });
    } else {
      out.events.push({ kind: 'gateway-error', reason, text });
      // The gateway refused flows or ports of ours on its own (a directory change, §11): the
      // pooled ports may be gone there; new connections reserve again and hear why.
      if (POLICY_REFUSALS.has(reason)) this.pools.clear();
    }
    if (SESSION_ENDING.has(reason)) {
      this.resetSession();
      this.st = 'idle';
      out.events.push({ kind: 'session-down', reason });
    }
  }
}

/** `addr:port`, with brackets around an IPv6 address. */
function endpointText(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
