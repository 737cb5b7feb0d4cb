// The gateway's questions to the directory (the daemon's GatewayPolicy callbacks), asked so that a
// callback that throws becomes an `internal` refusal and a 'policy-error' event, never a crash;
// and the one decision every reservation, binding, mapping and FTP alias takes again: may this
// session's user still reach this IN (docs/protocol.md §11, revocation)?

import type { ReasonName } from './constants.ts';
import {
  endpointString,
  type DirectoryUser,
  type GatewayEvent,
  type GatewayPolicy,
  type GatewayResult,
  type ReleasedPorts,
  type ReserveOutcome,
  type ReserveRequest,
  type UserLookupRefusal,
} from './gateway-types.ts';
import type { GatewaySession } from './gateway-session.ts';

export const FAILED: unique symbol = Symbol('policy callback failed');
/** The directory's answer to a request: allowed (and where the IN is), or why not, in words. */
export type Verdict = { allow: true; pin: string } | { allow: false; reason: ReasonName; text: string };

export class Directory {
  /** Exceptions thrown by callbacks since the last flush (reported as events). */
  private errors: string[] = [];

  constructor(private readonly policy: GatewayPolicy) {}

  private ask<T>(fn: () => T): T | typeof FAILED {
    try {
      return fn();
    } catch (e) {
      this.errors.push(e instanceof Error ? e.message : String(e));
      return FAILED;
    }
  }

  lookupUser(id: string): DirectoryUser | UserLookupRefusal | null | typeof FAILED {
    return this.ask(() => this.policy.lookupUser(id));
  }
  reservePorts(req: ReserveRequest): ReserveOutcome | typeof FAILED {
    return this.ask(() => this.policy.reservePorts(req));
  }
  releasePorts(r: ReleasedPorts): void {
    if (r.ports.length) this.ask(() => this.policy.releasePorts(r));
  }

  /**
   * Decides again for a session: the user still there and allowed, in the group, the key valid,
   * the IN allowed; with the words the agent shows when not.
   */
  decide(s: GatewaySession, inName: string, now: number): Verdict {
    const deny = (reason: ReasonName, text = `refused: ${reason}`): Verdict => ({
      allow: false,
      reason,
      text,
    });
    const u = this.lookupUser(s.user);
    if (u === FAILED) return deny('internal');
    if (!u) return deny('unknown-user', `no user ${s.user}`);
    if ('refused' in u) return deny(u.refused, u.text);
    if (u.refusal) return deny(u.refusal.reason, u.refusal.text);
    const g = u.groups.find((x) => x.name === s.group);
    if (!g) return deny('not-in-group');
    const k = g.keys.find((x) => x.version === s.gkVersion);
    if (!k || (k.notAfter !== undefined && now > k.notAfter)) return deny('stale-key-version');
    const d = this.ask(() => this.policy.mayReach(s.user, s.group, inName));
    if (d === FAILED) return deny('internal');
    return d.allow ? { allow: true, pin: d.pin } : deny(d.reason, d.text);
  }

  /** The audit event of a decision about a session's request. */
  decisionEvent(
    s: GatewaySession,
    step: 'reserve' | 'map' | 'ftp-alias',
    inName: string,
    reason: ReasonName | 'ok',
  ): GatewayEvent {
    return {
      kind: 'decision',
      step,
      user: s.user,
      group: s.group,
      in: inName,
      en: endpointString(s.peer),
      decision: reason === 'ok' ? 'allow' : 'deny',
      reason,
      sessionId: s.idHex,
    };
  }

  /** Appends a 'policy-error' event for every callback that threw since the last flush. */
  flush<R extends GatewayResult>(out: R): R {
    for (const detail of this.errors) out.events.push({ kind: 'policy-error', detail });
    this.errors = [];
    return out;
  }
}
