// What the daemons tell operators about refused packets: every reason the engine drops a packet
// for is a Prometheus counter of packets (the daemons' metrics read them with `syncCounter`), and
// every drop is eventually logged in a rate-limited summary line (`DropSummary`): one line per
// interval at most, flushed by a timer, so a trailing burst is never lost because no later drop
// came.
import type { DropReason } from './names.generated.ts';

export type DropCounts = Record<DropReason, number>;

/**
 * Sets a labelled counter (prom-client's Counter, in its `collect()`) to the engine's totals:
 * one series per reason, label `reason`.
 */
export function syncCounter(
  counter: { reset(): void; inc(labels: { reason: string }, value: number): void },
  counts: Partial<Record<string, number>> | undefined,
): void {
  counter.reset();
  for (const [reason, n] of Object.entries(counts ?? {})) if (n !== undefined) counter.inc({ reason }, n);
}

/** One summary: the packets refused since the previous line, by reason, and their total. */
export interface DropLine {
  dropped: Partial<Record<DropReason, number>>;
  total: number;
  /** Milliseconds the line covers. */
  periodMs: number;
}

/** The daemons' log line for one summary: `packets dropped`, with the counts and the period in seconds. */
export function warnDropLines(
  warn: (message: string, fields: { dropped: DropLine['dropped']; total: number; periodSec: number }) => void,
): (line: DropLine) => void {
  return (l) => warn('packets dropped', { dropped: l.dropped, total: l.total, periodSec: l.periodMs / 1000 });
}

/**
 * Logs refused packets as summary lines: at most one per `intervalMs`, and always one for drops
 * that happened, however few and however late (the timer flushes them; `stop()` flushes too).
 */
export class DropSummary {
  private last: Partial<Record<string, number>> = {};
  private since: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => Partial<Record<string, number>> | undefined,
    private readonly log: (line: DropLine) => void,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.since = now();
  }

  start(): void {
    this.last = { ...(this.read() ?? {}) };
    this.since = this.now();
    this.timer = setInterval(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Logs what was refused since the last line, if anything was. */
  flush(): void {
    const cur = this.read() ?? {};
    const dropped: Partial<Record<string, number>> = {};
    let total = 0;
    for (const [reason, n] of Object.entries(cur)) {
      const d = (n ?? 0) - (this.last[reason] ?? 0);
      if (d > 0) {
        dropped[reason] = d;
        total += d;
      }
    }
    this.last = { ...cur };
    const t = this.now();
    if (total > 0) this.log({ dropped: dropped as DropLine['dropped'], total, periodMs: t - this.since });
    this.since = t;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }
}
