// Child process of gateway-cost.ts: the packet engine's memory per flow. Adds `flows` reservations
// to gateway engines and binds each one in-band with a real first packet (a TCP SYN or a UDP
// datagram made and protected by an agent engine, whose flow is removed right after), so each is
// a bound flow as in production. The engine keys a flow by (proto, t), so one engine (one public
// address GGR) holds at most 2 x 65 535; beyond PER_ENGINE flows another engine (another GGR) is
// used. Prints {flows, engines, rssBefore, rssAfter, heapBefore, heapAfter, seconds, bound}; the
// baseline is taken after a warm-up of 1 024 flows in an engine of their own (see below).
// Run: node --expose-gc --import tsx flows-child.ts <flows>
import { randomBytes } from 'node:crypto';
import { Engine, directionKeys } from '../../native/index.ts';
import { tcp, udp, SYN } from '../../native/packets.ts';

const PER_ENGINE = 125_000;
const PIN = '10.0.0.11';
const VIN = '198.19.224.5';

function mem(): { rss: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const flows = Number(process.argv[2]);
if (!Number.isInteger(flows) || flows < 1)
  throw new Error(`usage: flows-child.ts <flows>, got ${process.argv[2]}`);
if (typeof (globalThis as { gc?: unknown }).gc !== 'function') throw new Error('run with --expose-gc');

const agent = new Engine({ role: 'agent', vinNet: '198.19.224.0/20' });
// The keys come from one random block per 1 024 flows (views into it; addReservation and addFlow
// copy them into the engines) rather than six buffers per flow, and the protected first packet
// and what the gateway makes of it go through two reused buffers (processInto, as a queue
// backend's packets do) rather than two new buffers per flow: the agent's side is the bench's,
// and its garbage made the 1 000 000-flow child run past its time budget on a loaded machine.
const KEY_BYTES = 2 * (16 + 32 + 8);
let pool = Buffer.alloc(0);
let at = 0;
const take = (n: number): Buffer => {
  if (at + n > pool.length) [pool, at] = [randomBytes(KEY_BYTES * 1024), 0];
  at += n;
  return pool.subarray(at - n, at);
};
const dir = () => ({ encKey: take(16), macKey: take(32), ivSalt: take(8) });
const keys = () => ({ enToGw: dir(), gwToEn: dir() });
const wire = Buffer.alloc(2048);
const lan = Buffer.alloc(2048);
let id = 1;
/** Adds `here` reservations to `gw` and binds each; `done` flows were bound before (addresses). */
function bind(gw: Engine, ggr: string, here: number, done: number): void {
  for (let k = 0; k < here; k++, id++, done++) {
    const proto = k < here / 2 ? 'tcp' : 'udp';
    const t = 1 + (k < here / 2 ? k : k - Math.ceil(here / 2));
    const pen = `192.168.${(done >> 16) & 255}.${(done >> 8) & 255}`;
    const s = 1024 + (done & 255) * 200 + (k % 200);
    const d = proto === 'tcp' ? 443 : 53;
    const kk = keys();
    gw.addReservation({ id, proto, t, pin: PIN, ...directionKeys('gateway', kk) });
    agent.addFlow({ id, proto, pen, s, vin: VIN, d, ggr, t, ...directionKeys('agent', kk) });
    const first =
      proto === 'tcp' ? tcp(pen, s, VIN, d, 1000, 0, SYN) : udp(pen, s, VIN, d, Buffer.alloc(32, 1));
    const n = agent.processInto(first, 'out', wire);
    if (n < 0)
      throw new Error(`agent did not protect flow ${id}: ${JSON.stringify(agent.process(first, 'out'))}`);
    if (gw.processInto(wire.subarray(0, n), 'in', lan) < 0) {
      const inb = gw.process(wire.subarray(0, n), 'in');
      throw new Error(`gateway did not bind flow ${id}: ${inb.reason ?? inb.verdict}`);
    }
    agent.removeFlow(id);
    // The 'bound' events, taken as they come (the daemon's onEvents gets them after each batch of
    // packets): left to pile up, 125 000 of them per engine would be measured as if the gateway
    // held them.
    if (k % 1024 === 1023) gw.pollEvents();
  }
  gw.pollEvents();
}

// Warm-up, before the baseline: 1 024 flows in an engine of their own (kept), so that what every
// process pays once (compiled code, the engines' first buffers, the crypto library's per-thread
// contexts) is not counted as the flows' (it moved the figure by up to 20 MiB between runs).
const WARM = 1024;
const warm = new Engine({
  role: 'gateway',
  ggr: '203.0.113.250',
  pgr: '10.0.0.1',
  timeouts: { reservationMs: 86_400_000 },
});
bind(warm, '203.0.113.250', WARM, 0);
const before = mem();
const t0 = process.hrtime.bigint();
const engines: Engine[] = [];
for (let done = 0; done < flows;) {
  const ggr = `203.0.113.${1 + engines.length}`;
  const gw = new Engine({ role: 'gateway', ggr, pgr: '10.0.0.1', timeouts: { reservationMs: 86_400_000 } });
  engines.push(gw);
  const here = Math.min(PER_ENGINE, flows - done);
  bind(gw, ggr, here, done);
  done += here;
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const after = mem();
const bound = engines.reduce((n, e) => n + e.stats().bound, 0);
if (warm.stats().bound !== WARM) throw new Error(`warm-up: ${warm.stats().bound} of ${WARM} flows bound`);
console.log(
  JSON.stringify({
    flows,
    engines: engines.length,
    bound,
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heap,
    heapAfter: after.heap,
    seconds,
  }),
);
