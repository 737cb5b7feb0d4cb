// The gateway's reservations phase (docs/protocol.md §7, §8, §11, §12): RESERVE takes ports from
// the pool and adds rows to the reservation table; the flow's first packet (in-band) or BIND/MAP
// (explicit mode) bind and map a row; the FTP ALG adds a data port to a session; RELEASE, expiry,
// a directory change and the end of the session remove rows and give their ports back. Every
// step that grants something decides again from the directory first.

import type { ProtoNumber, ReasonName } from './constants.ts';
import type { Body } from './channel.ts';
import { deriveFlowKeys, deriveFlowKeysMany, type FlowKeys } from './crypto.ts';
import { FAILED, type Directory } from './gateway-directory.ts';
import { errorBody, sendReliably, sendTo, type GatewaySession } from './gateway-session.ts';
import type { Endpoint, GatewayConfig, GatewayResult, ReservationEndCause } from './gateway-types.ts';
import type { MessageOf } from './messages.ts';
import type { Reservation, ReservationTable } from './reservation-table.ts';
import type { StateChanges } from './gateway-state.ts';

type Grant = { ports: number[]; pin: string } | { reason: ReasonName; text: string };
const no = (reason: ReasonName, text = `refused: ${reason}`): Grant => ({ reason, text });

export class ReservationPhase {
  constructor(
    readonly table: ReservationTable,
    private readonly directory: Directory,
    private readonly sessions: ReadonlyMap<string, GatewaySession>,
    private readonly cfg: GatewayConfig,
    private readonly changes: StateChanges,
  ) {}

  /** The row of (proto, t) if it belongs to session s. */
  private own(s: GatewaySession, proto: ProtoNumber, t: number): Reservation | undefined {
    const r = this.table.get(proto, t);
    return r?.sessionId === s.idHex ? r : undefined;
  }

  /**
   * Decides, then takes `count` ports from the pool for session s. A pool answer with a bad, busy
   * or repeated port counts as exhausted (its good ports go back), extra ports go back; a pool
   * that is exhausted while rows are past their lifetime gets those back first, and is asked again.
   */
  private take(
    s: GatewaySession,
    want: { inName: string; proto: ProtoNumber; count: number },
    now: number,
    out: GatewayResult,
  ): Grant {
    const { inName, proto, count } = want;
    const verdict = this.directory.decide(s, inName, now);
    if (!verdict.allow) return no(verdict.reason, verdict.text);
    const held = this.table.countOf(s.idHex);
    const max = this.cfg.maxReservationsPerSession;
    if (held + count > max) {
      out.events.push({ kind: 'limit', limit: 'per-session', user: s.user, sessionId: s.idHex, held, max });
      return no(
        'rate-limited',
        `this session holds ${held} ports, the most one session may hold is ${max}; close some connections`,
      );
    }
    const ask = () =>
      this.directory.reservePorts({
        sessionId: s.idHex,
        user: s.user,
        userDn: s.userDn,
        group: s.group,
        inName,
        pin: verdict.pin,
        proto,
        count,
        en: { ...s.peer },
      });
    let got = ask();
    if (
      got !== FAILED &&
      'reason' in got &&
      got.reason === 'no-ports' &&
      (this.table.nextExpiry() ?? now + 1) <= now
    ) {
      this.expire(now, out);
      got = ask();
    }
    if (got === FAILED) return no('internal');
    if ('reason' in got) return no(got.reason, got.text || undefined);
    const giveBack = (ports: number[]) =>
      this.directory.releasePorts({ user: s.user, en: s.peer, ports: ports.map((t) => ({ proto, t })) });
    const ok = got.ports.filter(
      (t) => Number.isInteger(t) && t > 0 && t < 65536 && !this.table.has(proto, t),
    );
    if (ok.length !== got.ports.length || new Set(ok).size !== ok.length) {
      giveBack([...new Set(ok)]);
      return no('no-ports');
    }
    if (ok.length > count) giveBack(ok.slice(count));
    const ports = ok.slice(0, count);
    return ports.length ? { ports, pin: verdict.pin } : no('no-ports');
  }

  /** RESERVE: k ports for an IN, each a row with its own serial and keys; answers RESERVED or ERROR. */
  reserve(s: GatewaySession, m: MessageOf<'RESERVE'>, now: number, out: GatewayResult): Body {
    const grant = this.take(s, m, now, out);
    out.events.push(
      this.directory.decisionEvent(s, 'reserve', m.inName, 'reason' in grant ? grant.reason : 'ok'),
    );
    if ('reason' in grant) return errorBody(m.seq, grant.reason, grant.text);
    const serial = s.nextSerial;
    // every port's keys, both directions, in one derivation
    const flows = grant.ports.map((t, i) => ({ proto: m.proto, t, serial: serial + i }));
    const keys = deriveFlowKeysMany(s.secret, flows);
    flows.forEach((f, i) =>
      this.add(s, { ...f, inName: m.inName, pin: grant.pin, vin: m.vin }, keys[i]!, now, out),
    );
    return {
      type: 'RESERVED',
      ack: m.seq,
      proto: m.proto,
      lifetime: this.cfg.reservationLifetimeSec,
      serial,
      inName: m.inName,
      ports: grant.ports,
    };
  }

  private add(
    s: GatewaySession,
    f: {
      proto: ProtoNumber;
      t: number;
      inName: string;
      pin: string;
      serial: number;
      vin?: string;
      aliasPort?: number;
    },
    keys: FlowKeys,
    now: number,
    out: GatewayResult,
  ): Reservation {
    s.nextSerial = f.serial + 1;
    this.changes.session(s);
    const { vin, aliasPort, ...rest } = f;
    const record = this.table.add(
      {
        ...rest,
        sessionId: s.idHex,
        user: s.user,
        userDn: s.userDn,
        group: s.group,
        keys,
        en: { ...s.peer },
        ...(vin !== undefined && vin !== '0.0.0.0' ? { vin } : {}),
        ...(aliasPort !== undefined ? { aliasPort, mapping: { d: aliasPort } } : {}),
      },
      now,
    );
    out.events.push({ kind: 'reservation', record });
    return record;
  }

  /**
   * The engine verified the first packet of a flow to GGR:t (authenticated with the flow keys of
   * row (proto, t)) that came from GHR:m and carried the original destination port d. Records
   * binding and mapping and tells the agent (BOUND, retransmitted until ACKed); if the directory
   * changed since RESERVE, ends the row instead and tells the agent once (ERROR).
   */
  inband(
    b: { proto: ProtoNumber; t: number; ghr: string; m: number; d: number },
    now: number,
  ): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    const r = this.table.get(b.proto, b.t);
    const s = r && this.sessions.get(r.sessionId);
    if (!r || !s) {
      const detail = `${b.proto}/${b.t}`;
      out.events.push({ kind: 'dropped', from: `${b.ghr}:${b.m}`, reason: 'unknown-reservation', detail });
      return out;
    }
    const verdict = this.directory.decide(s, r.inName, now);
    out.events.push(this.directory.decisionEvent(s, 'map', r.inName, verdict.allow ? 'ok' : verdict.reason));
    if (!verdict.allow) {
      this.end(r, 'released', 'policy', out);
      sendTo(s, errorBody(0n, verdict.reason, `flow ${b.proto}/${b.t} refused: ${verdict.text}`), now, out);
      return out;
    }
    const old = r.binding;
    const from = old && (old.ghr !== b.ghr || old.m !== b.m) ? `${old.ghr}:${old.m}` : undefined;
    this.table.map(r, b.d, now, { ghr: b.ghr, m: b.m });
    out.events.push(
      {
        kind: 'binding',
        sessionId: s.idHex,
        proto: b.proto,
        t: b.t,
        ghr: b.ghr,
        m: b.m,
        via: 'in-band',
        ...(from && { from }),
      },
      { kind: 'mapping', record: r },
    );
    sendReliably(s, { type: 'BOUND', ack: 0n, proto: b.proto, t: b.t, ghr: b.ghr, m: b.m, d: b.d }, now, out);
    return out;
  }

  /** Explicit mode (§8.2): a BIND probe that reached GGR:t on the flow's own mapping. */
  bind(s: GatewaySession, m: MessageOf<'BIND'>, from: Endpoint, localPort: number, out: GatewayResult): Body {
    const r = this.own(s, m.proto, m.t);
    if (r && r.proto !== 17)
      return errorBody(m.seq, 'unknown-reservation', 'BIND probes are for UDP flows; TCP binds in-band');
    if (!r || localPort !== m.t)
      return errorBody(m.seq, 'unknown-reservation', `no reservation ${m.proto}/${m.t}`);
    this.table.bind(r, { ghr: from.addr, m: from.port });
    out.events.push({
      kind: 'binding',
      sessionId: s.idHex,
      proto: r.proto,
      t: r.t,
      ghr: from.addr,
      m: from.port,
      via: 'bind',
    });
    const d = r.mapping?.d ?? 0;
    return { type: 'BOUND', ack: m.seq, proto: r.proto, t: r.t, ghr: from.addr, m: from.port, d };
  }

  /** Explicit mode (§8.2): MAP after BOUND; requires the binding the gateway saw. */
  map(s: GatewaySession, m: MessageOf<'MAP'>, now: number, out: GatewayResult): Body {
    const r = this.own(s, m.proto, m.t);
    if (!r) return errorBody(m.seq, 'unknown-reservation', `no reservation ${m.proto}/${m.t}`);
    if (!r.binding || r.binding.ghr !== m.ghr || r.binding.m !== m.m)
      return errorBody(m.seq, 'not-bound', 'binding unknown or different; send BIND first');
    const verdict = this.directory.decide(s, r.inName, now);
    out.events.push(this.directory.decisionEvent(s, 'map', r.inName, verdict.allow ? 'ok' : verdict.reason));
    if (!verdict.allow) return errorBody(m.seq, verdict.reason, verdict.text);
    this.table.map(r, m.d, now);
    out.events.push({ kind: 'mapping', record: r });
    return {
      type: 'MAPPED',
      ack: m.seq,
      proto: r.proto,
      t: r.t,
      d: m.d,
      lifetime: this.cfg.mappingLifetimeSec,
    };
  }

  /**
   * The FTP ALG saw a PASV/EPSV reply on the control connection of row (TCP, ctrlT) announcing
   * data port `aliasPort` on PIN. Adds a data port dataT to the same session (its mapping d =
   * aliasPort set in advance) and tells the agent (FTP_ALIAS, retransmitted until ACKed). The ALG
   * rewrites the reply only if a record is returned, and only to `record.vin`.
   */
  ftpAlias(a: { ctrlT: number; aliasPort: number }, now: number): GatewayResult & { record?: Reservation } {
    const out: GatewayResult & { record?: Reservation } = { send: [], events: [] };
    const ctrl = this.table.get(6, a.ctrlT);
    const s = ctrl && this.sessions.get(ctrl.sessionId);
    if (!ctrl || !s) return out;
    const grant = this.take(s, { inName: ctrl.inName, proto: 6, count: 1 }, now, out);
    out.events.push(
      this.directory.decisionEvent(s, 'ftp-alias', ctrl.inName, 'reason' in grant ? grant.reason : 'ok'),
    );
    if ('reason' in grant) return out;
    const t = grant.ports[0]!;
    const serial = s.nextSerial;
    out.record = this.add(
      s,
      { proto: 6, t, inName: ctrl.inName, pin: grant.pin, serial, vin: ctrl.vin, aliasPort: a.aliasPort },
      deriveFlowKeys(s.secret, 6, t, serial),
      now,
      out,
    );
    const body: Body = {
      type: 'FTP_ALIAS',
      ack: 0n,
      ctrlT: a.ctrlT,
      aliasPort: a.aliasPort,
      dataT: t,
      serial,
      lifetime: this.cfg.reservationLifetimeSec,
    };
    sendReliably(s, body, now, out);
    return out;
  }

  /** RELEASE of one port (idempotent: a port the session does not hold is acknowledged too). */
  release(s: GatewaySession, proto: ProtoNumber, t: number, out: GatewayResult): void {
    const r = this.own(s, proto, t);
    if (r) this.end(r, 'released', 'release', out);
  }

  /**
   * Decides every row again (call after the directory changed): the ones the policy now refuses
   * end at once - unless `keep` says otherwise - each with a 'decision' event naming the reason,
   * and the agent is told once (ERROR with ack 0, as for a refused in-band binding, §8.1): a
   * live flow by its port, the unused pooled ports once per session. Sessions stay up.
   */
  recheckAll(now: number, keep?: (r: Reservation, reason: ReasonName) => boolean): GatewayResult {
    const out: GatewayResult = { send: [], events: [] };
    for (const s of [...this.sessions.values()]) {
      let pooled: { reason: ReasonName; text: string } | undefined;
      for (const r of this.table.ofSession(s.idHex)) {
        const v = this.directory.decide(s, r.inName, now);
        if (v.allow || keep?.(r, v.reason)) continue;
        out.events.push(this.directory.decisionEvent(s, 'map', r.inName, v.reason));
        this.end(r, 'released', 'policy', out);
        if (r.mapping)
          sendTo(s, errorBody(0n, v.reason, `flow ${r.proto}/${r.t} refused: ${v.text}`), now, out);
        else pooled ??= v;
      }
      if (pooled) sendTo(s, errorBody(0n, pooled.reason, `reservations refused: ${pooled.text}`), now, out);
    }
    return out;
  }

  /**
   * A row the data plane cannot carry on (a restart without the engine's flow state): it ends,
   * and its agent hears at once (ERROR unknown-reservation naming the flow), so the application's
   * connection is reset instead of stalling.
   */
  lose(r: Reservation, why: string, now: number, out: GatewayResult): void {
    const s = this.sessions.get(r.sessionId);
    this.end(r, 'lost', 'restart', out);
    if (s) sendTo(s, errorBody(0n, 'unknown-reservation', `flow ${r.proto}/${r.t} lost: ${why}`), now, out);
  }

  endAll(s: GatewaySession, reason: 'released' | 'expired', out: GatewayResult): void {
    for (const r of this.table.ofSession(s.idHex)) this.end(r, reason, 'session', out);
  }
  /** Ends every row whose lifetime is over. */
  expire(now: number, out: GatewayResult): void {
    for (const r of this.table.due(now)) this.end(r, 'expired', 'lifetime', out);
  }
  /**
   * The engine ended the flow of row (proto, t) with this id (it timed out, or closed and went
   * quiet): the row ends too and its port goes back. `closedBy` 'en': the PC closed first, so the
   * server holds no TIME_WAIT and the port needs no cooling.
   */
  flowEnded(
    e: { proto: ProtoNumber; t: number; id: number; closedBy?: 'in' | 'en' },
    out: GatewayResult,
  ): void {
    const r = this.table.get(e.proto, e.t);
    if (r?.id === e.id) this.end(r, 'expired', 'engine', out, e.closedBy);
  }

  private end(
    r: Reservation,
    reason: 'released' | 'expired' | 'lost',
    cause: ReservationEndCause,
    out: GatewayResult,
    closedBy?: 'in' | 'en',
  ): void {
    if (!this.table.delete(r)) return;
    // a TCP connection ran on this port (it bound): its server may hold TIME_WAIT for PGR:t
    const cool = r.proto === 6 && r.binding !== undefined && closedBy !== 'en';
    this.directory.releasePorts({
      user: r.user,
      en: r.en,
      ports: [{ proto: r.proto, t: r.t, ...(cool ? { coolToward: r.pin } : {}) }],
    });
    out.events.push({
      kind: 'reservation-ended',
      sessionId: r.sessionId,
      proto: r.proto,
      t: r.t,
      reason,
      cause,
      record: r,
    });
  }
}
