// How many NFQUEUE queues each side of a daemon's engine uses, their numbers, and how the iptables
// rules spread flows over them with every flow pinned to one queue (docs/architecture.md).
//
// The kernel's own spreading does not fit: `--queue-balance` hashes the IP addresses and protocol
// only (every flow of one agent would land on one queue at the gateway), and
// `--queue-cpu-fanout` picks the queue by the CPU the packet is on, which moves with the sending
// process (a flow would hop queues and could be reordered). So the rules spread by a port that is
// fixed for the life of a flow on that side — the application's source port on the agent's way
// out, the flow's GGR port t on the way in and at the gateway's internet side, the PGR port at the
// gateway's LAN side — through `-m u32` on its low bits: stateless, no mark touched, and a flow's
// packets always take the same queue, so they stay in order (one thread per queue).
import { cpus } from 'node:os';

/** The most queues per side (the rules grow with it; more threads than cores only cost). */
export const MAX_QUEUES_PER_SIDE = 8;
/** The default per side: one per CPU, at most this. */
export const AUTO_QUEUES_CAP = 4;

/**
 * The queue numbers of each side: side i takes `bases[i]`, `bases[i] + 1`, … (`perSide` of them).
 * `perSide` 0 means automatic: one per CPU, at most AUTO_QUEUES_CAP, and never so many that the
 * two sides' numbers meet (so a config that names adjacent bases, e.g. the old default [0, 1],
 * keeps one queue per side). An explicit count whose numbers would overlap is an error.
 */
export function queueLayout(
  bases: readonly [number, number],
  perSide: number,
  cpuCount: number = cpus().length,
): [number[], number[]] {
  const [a, b] = bases;
  if (a === b) throw new Error(`engine.queues: the two sides need different queue numbers (both ${a})`);
  const gap = Math.abs(a - b);
  let n = perSide;
  if (n === 0) n = Math.max(1, Math.min(cpuCount, AUTO_QUEUES_CAP, gap));
  if (!Number.isInteger(n) || n < 1 || n > MAX_QUEUES_PER_SIDE)
    throw new Error(`engine.queuesPerSide: ${perSide} is not 0 (automatic) to ${MAX_QUEUES_PER_SIDE}`);
  if (n > gap)
    throw new Error(
      `engine.queues [${a}, ${b}] with ${n} queues per side overlap: the sides take ${a}..${a + n - 1} and ${b}..${b + n - 1}; put the two numbers at least ${n} apart`,
    );
  if (Math.max(a, b) + n - 1 > 65535)
    throw new Error(`engine.queues: ${Math.max(a, b)} + ${n} queues pass 65535`);
  const side = (base: number) => Array.from({ length: n }, (_, k) => base + k);
  return [side(a), side(b)];
}

/** Bits of the port the spreading looks at. */
function spreadBits(n: number): number {
  return n <= 4 ? 4 : 6;
}

/**
 * Which of `n` queues a flow whose pinned port is `port` goes to: the sum of the base-M digits of
 * the port's low bits, modulo n (M the smallest power of two ≥ n; for n = 2 the parity of the low
 * 4 bits). Consecutive ports and ports two apart (Linux connect() prefers even ports) both spread
 * evenly. Exported for the tests; the rules below are what the kernel runs.
 */
export function queueIndexOfPort(port: number, n: number): number {
  if (n <= 1) return 0;
  const digitBits = Math.ceil(Math.log2(n));
  let v = port & ((1 << spreadBits(n)) - 1);
  let sum = 0;
  while (v > 0) {
    sum += v & ((1 << digitBits) - 1);
    v >>= digitBits;
  }
  return sum % n;
}

/** The u32 value lists (at most 10 values or ranges each, the match's limit) of queue index k. */
export function spreadValues(k: number, n: number): string[] {
  const size = 1 << spreadBits(n);
  const ranges: [number, number][] = [];
  for (let v = 0; v < size; v++) {
    if (queueIndexOfPort(v, n) !== k) continue;
    const last = ranges[ranges.length - 1];
    if (last && last[1] === v - 1) last[1] = v;
    else ranges.push([v, v]);
  }
  const out: string[] = [];
  for (let i = 0; i < ranges.length; i += 10)
    out.push(
      ranges
        .slice(i, i + 10)
        .map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`))
        .join(','),
    );
  return out;
}

/**
 * The iptables match arguments that take the packets of queue index k (k ≥ 1) of n: a TCP or UDP
 * packet that is not a fragment (fragments and other protocols go to index 0, the rule after
 * these), whose source (`which: 'sport'`) or destination port spreads to k. One argument list per
 * rule (usually one).
 */
export function spreadMatches(k: number, n: number, which: 'sport' | 'dport'): string[][] {
  const mask = (1 << spreadBits(n)) - 1;
  // @0 reads the first 4 bytes of the transport header: source port << 16 | destination port.
  const port =
    which === 'sport' ? `0>>22&0x3C@0>>16&0x${mask.toString(16)}` : `0>>22&0x3C@0&0x${mask.toString(16)}`;
  // Not a fragment (MF clear, offset 0), TCP or UDP.
  const whole = ['4&0x3FFF=0', '6&0xFF=6,17'];
  return spreadValues(k, n).map((vals) => ['-m', 'u32', '--u32', [...whole, `${port}=${vals}`].join(' && ')]);
}
