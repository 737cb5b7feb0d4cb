// The agent's side of each group's control session: the Session record (one per group) and what
// the daemon does with each event its control layer reports (session up or down and re-login with
// backoff, reservations granted or refused, flows bound, lost or refused by the gateway, the home
// NAT moving, FTP data ports). The daemon (daemon.ts) owns the sessions and passes itself in as a
// ControlEventHost.
import type { Socket } from 'node:dgram';
import { protocol, type Logger } from '@gsra/common';
import type { AgentFlows } from './agent-flows.ts';
import type { WaitingConnections } from './waiting.ts';
import { ACCOUNT_REASONS, loginRefusalWords, refusalWords, sessionDownWords, versionWords } from './words.ts';

type AgentResult = protocol.AgentResult;
type AgentEvent = protocol.AgentEvent;
type ProtoNumber = protocol.ProtoNumber;

const { protoName } = protocol;

/** After a failed or lost session, try again after this long (doubling to 30 s). */
export const RELOGIN_MIN_MS = 1000;

export interface Session {
  group: string;
  control: protocol.AgentControl;
  sock: Socket;
  timer?: NodeJS.Timeout;
  /** The pending re-login after a lost or refused session (at most one), and when it fires. */
  retry?: NodeJS.Timeout;
  retryAt?: number;
  up: boolean;
  retryMs: number;
  lastError?: string;
  /** control.changeCount when the session was last written to the store. */
  saved: number;
  /** When a datagram last came from the gateway. */
  heardAt?: number;
}

/** What the event handling needs from the daemon. */
export interface ControlEventHost {
  log: Logger;
  user: string;
  now(): number;
  /** Why the stored login is too old, once it is. */
  expired(): string | undefined;
  flows(): AgentFlows;
  waiting: WaitingConnections;
  /** Sends a control result's datagrams and handles its events (AgentDaemon.apply). */
  apply(s: Session, r: AgentResult): void;
  persist(): void;
  dropFlows(group: string, reason: string): void;
  serveWaiting(name: string): void;
  askAgain(s: Session, name: string, proto: ProtoNumber): boolean;
  failWaiting(name: string, proto: ProtoNumber, reason: string, text: string): string;
  /** Makes every live flow send a probe; returns how many did. */
  probeAll(): number;
}

/** Handles one event of session `s` (called for each event of a control result, in order). */
export function onControlEvent(h: ControlEventHost, s: Session, e: AgentEvent): void {
  switch (e.kind) {
    case 'session-up':
      s.up = true;
      s.retryMs = RELOGIN_MIN_MS;
      s.lastError = undefined;
      h.log.info(e.resumed ? 'session resumed' : 'session up', { group: s.group, session: e.sessionId });
      break;
    case 'gateway-unreachable':
      s.lastError = 'the gateway does not answer (flows are kept while it restarts)';
      h.log.warn('the gateway does not answer: session and flows kept', { group: s.group });
      break;
    case 'gateway-reachable':
      s.lastError = undefined;
      h.log.info('the gateway answers again', { group: s.group, afterMs: e.afterMs });
      break;
    case 'session-down':
    case 'refused': {
      s.up = false;
      const reason = e.reason;
      if (h.expired()) {
        s.lastError = h.expired();
        h.dropFlows(s.group, String(reason));
        break; // no re-login with a login that is too old
      }
      if (e.kind === 'refused') {
        s.lastError = loginRefusalWords(h.user, reason, e.text);
        h.log.warn(s.lastError, { group: s.group, reason });
      } else {
        if (!(s.lastError && ACCOUNT_REASONS.has(String(reason)))) s.lastError = sessionDownWords(reason);
        h.log.warn('session down', { group: s.group, reason, words: sessionDownWords(reason) });
      }
      // The gateway no longer knows this session's ports: its flows cannot carry another packet.
      // Drop them now, so an application's next packet (a SYN retransmission, a new datagram)
      // is held again and leaves on a port of the next session instead of vanishing.
      h.dropFlows(s.group, String(reason));
      if (e.kind === 'session-down' && reason === 'logout') break;
      // The gateway lost us (restart) and the control layer already said HELLO again: a second
      // login here would make a second session. If that handshake fails, a 'timeout' follows.
      if (e.kind === 'session-down' && reason === 'unknown-session') break;
      // Survive an unreachable or restarted gateway: log in again with backoff, one timer at a time.
      if (s.retry) clearTimeout(s.retry);
      s.retryAt = h.now() + s.retryMs;
      s.retry = setTimeout(() => {
        s.retry = undefined;
        s.retryAt = undefined;
        h.apply(s, s.control.login(h.now()));
      }, s.retryMs);
      s.retry.unref();
      s.retryMs = Math.min(s.retryMs * 2, 30_000);
      break;
    }
    case 'reserved':
      h.waiting.forget(e.inName, e.proto);
      s.lastError = undefined;
      h.serveWaiting(e.inName);
      break;
    case 'reserve-failed': {
      if (e.reason === 'timeout' && h.askAgain(s, e.inName, e.proto)) break;
      const words = h.failWaiting(e.inName, e.proto, e.reason, e.text);
      // what the help desk must see in `gsra-agent status` (a session-down may follow)
      if (e.reason === 'directory-unavailable' || ACCOUNT_REASONS.has(e.reason)) s.lastError = words;
      break;
    }
    case 'bound': {
      const f = h.flows().byPort(e.proto, e.t);
      if (f) f.bound = `${e.ghr}:${e.m}`;
      h.log.debug('flow bound', { in: f?.name, t: e.t, ghr: e.ghr, m: e.m, d: e.d });
      break;
    }
    case 'address-changed': {
      // The home NAT moved our control channel: it may have moved every flow's mapping too.
      // Each live flow sends a probe now, so the gateway follows it even where the server
      // speaks next (docs/pccom.md §6.1).
      const probes = h.probeAll();
      h.log.info('public address changed', { group: s.group, from: e.from, to: e.to, probes });
      break;
    }
    case 'ftp-alias': {
      // The FTP server announced a data port on the control flow ctrlT: a connection to
      // VIN:aliasPort will use the port the gateway reserved for it.
      const ctrl = h.flows().byPort(6, e.ctrlT);
      if (!ctrl) break;
      h.flows().setAlias(`${ctrl.key.dst}:${e.aliasPort}`, {
        group: s.group,
        name: ctrl.name,
        port: e.port,
      });
      h.persist(); // before the ACK that lets the gateway release the passive reply
      h.log.debug('FTP data port reserved', { in: ctrl.name, d: e.aliasPort, t: e.port.t });
      break;
    }
    case 'gateway-error':
      onGatewayError(h, s, e.reason, e.text);
      break;
    case 'request-failed':
      h.log.warn('request failed', { group: s.group, type: e.type, reason: e.reason, text: e.text });
      break;
    case 'dropped':
      if (e.reason === 'unauthenticated-teardown')
        // someone who saw the session id said the session is gone; the gateway is asked instead
        h.log.warn('unauthenticated teardown ignored: asking the gateway', {
          group: s.group,
          reason: e.reason,
        });
      else if (e.reason === 'unsupported-version' && !s.up) {
        s.lastError = versionWords(e.detail ?? '');
        h.log.warn(s.lastError, { group: s.group, reason: e.reason });
      }
      break;
    default:
      break;
  }
}

/**
 * The gateway refused on its own (a directory change, or the directory lost): a live flow
 * ("flow <proto>/<t> refused: ...") leaves the engine at once, so the application's next packet
 * is held and failed with the reason instead of vanishing; the IN's refusal is remembered.
 */
function onGatewayError(h: ControlEventHost, s: Session, reason: string, text: string): void {
  const lost = /^flow (6|17)\/(\d+) lost: (.*)$/s.exec(text);
  if (lost) {
    // The gateway could not carry this flow on (it restarted without the engine's state): the
    // flow leaves the engine, so the application's next segment gets a reset at once.
    const f = h.flows().byPort(Number(lost[1]), Number(lost[2]));
    if (f) {
      h.flows().forget(f, true);
      h.persist();
      h.log.warn('flow ended', {
        in: f.name,
        proto: protoName(f.key.proto),
        d: f.key.dport,
        state: 'lost',
        reason: lost[3],
      });
    }
    return;
  }
  const m = /^flow (6|17)\/(\d+) refused(?:: (.*))?$/s.exec(text);
  const why = m?.[3] ?? text.replace(/^reservations refused: /, '');
  const f = m ? h.flows().byPort(Number(m[1]), Number(m[2])) : undefined;
  const name = f?.name ?? 'internal hosts';
  const words = refusalWords(h.user, name, reason, why);
  if (reason === 'directory-unavailable' || ACCOUNT_REASONS.has(reason)) s.lastError = words;
  if (f) {
    h.flows().forget(f, true);
    h.persist();
    h.waiting.remember(f.name, f.key.proto, reason, words, h.now());
    h.log.warn(words, { in: f.name, d: f.key.dport, reason, state: 'refused' });
  } else {
    h.log.warn(words, { group: s.group, reason });
  }
}
