// The agent's DNS path: it watches the queries for its zones leave, and rewrites GGR to a VIN
// (same length) in their answers — only in answers dns-guard.ts matched to such a query; any
// other answer that reached it is dropped. Each name mapped is reported, so that the agent
// reserves ports for it at once (the first connection then rarely waits).
import { rewriteARecords, DnsError, type Logger } from '@gsra/common';
import type { AgentDataPlane } from './data-plane.ts';
import type { DnsGuard } from './dns-guard.ts';
import type { VinTable } from './vin.ts';

/** One log line per kind of dropped answer per this long (a forged flood is not a log flood). */
const LOG_EVERY_MS = 10_000;
/** Answers for internal names carry at most this TTL (s): a VIN is not cached much longer. */
const TTL_CAP = 60;

export class DnsAnswers {
  private logged = new Map<string, number>();

  constructor(
    private readonly o: {
      guard: DnsGuard;
      /** GGR: what public DNS answers for every internal name. */
      ggr: string;
      zones: string[];
      vins: VinTable;
      dataPlane: AgentDataPlane;
      log: Logger;
      /** Does something live use this VIN? (then it is never given to another name) */
      inUse: (vin: string) => boolean;
      /** A name in a zone was given its VIN. */
      mapped: (name: string) => void;
      /** Called before a rewritten answer leaves (the agent saves its VIN table: a restart keeps it). */
      beforeAnswer?: () => void;
    },
  ) {}

  private inZone(name: string): boolean {
    return this.o.zones.some((z) => name === z || name.endsWith(`.${z}`));
  }

  /** An outbound query for a zone name (already on its way). */
  query(packet: Buffer, now: number): void {
    this.o.guard.query(packet, now);
  }

  /** A DNS answer waiting for the agent's verdict. */
  answer(id: number, packet: Buffer, now: number): void {
    const { dataPlane, log, vins } = this.o;
    const check = this.o.guard.answer(packet, now);
    if (!check.ok) {
      dataPlane.dnsDrop(id);
      if ((this.logged.get(check.reason) ?? -Infinity) + LOG_EVERY_MS <= now) {
        this.logged.set(check.reason, now);
        log.warn('DNS answer dropped: it answers no query this PC sent (forged, or late)', {
          reason: check.reason,
          total: this.o.guard.refused[check.reason],
        });
      }
      return;
    }
    const out = Buffer.from(packet);
    const ihl = (out[0]! & 15) * 4;
    const names: string[] = [];
    try {
      const n = rewriteARecords(
        out.subarray(ihl + 8),
        (name, addr) => {
          if (addr !== this.o.ggr || !this.inZone(name)) return undefined;
          names.push(name);
          return vins.assign(name, TTL_CAP, now, this.o.inUse).vin;
        },
        TTL_CAP,
      );
      if (n > 0) this.o.beforeAnswer?.();
      dataPlane.dnsVerdict(id, n > 0 ? out : undefined);
    } catch (e) {
      if (e instanceof DnsError) {
        dataPlane.dnsVerdict(id); // not ours to judge: pass it unchanged
        return;
      }
      // No VIN for the name (the range is full of live ones): the application must not get
      // GGR (it would talk to the gateway in clear). It gets no answer and asks again.
      dataPlane.dnsDrop(id);
      log.error('DNS answer for an internal name dropped: no VIN free', {
        reason: 'vin-exhausted',
        detail: (e as Error).message,
      });
      return;
    }
    for (const name of names) {
      this.o.mapped(name);
      log.debug('internal name mapped', { in: name, vin: vins.byHostName(name)?.vin });
    }
  }

  stats(): { refused: Record<string, number>; pending: number; vinsEvicted: number } {
    return {
      refused: { ...this.o.guard.refused },
      pending: this.o.guard.size,
      vinsEvicted: this.o.vins.evicted,
    };
  }
}
