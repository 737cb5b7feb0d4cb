// Child process of gateway-cost.ts: the packet engine's memory per flow. Adds `flows` reservations
// to gateway engines and binds each one in-band with a real first packet (a TCP SYN or a UDP
// datagram made and protected by an agent engine, whose flow is removed right after), so each is
// a bound flow as in production. The engine keys a flow by (proto, t), so one engine (one public
// address GGR) holds at most 2 x 65 535; beyond PER_ENGINE flows another engine (another GGR) is
// used. Prints {flows, engines, rssBefore, rssAfter, heapBefore, heapAfter, seconds, bound}.
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
const keys = () => ({
  enToGw: { encKey: randomBytes(16), macKey: randomBytes(32), ivSalt: randomBytes(8) },
  gwToEn: { encKey: randomBytes(16), macKey: randomBytes(32), ivSalt: randomBytes(8) },
});
const before = mem();
const t0 = process.hrtime.bigint();
const engines: Engine[] = [];
let id = 1;
for (let done = 0; done < flows;) {
  const ggr = `203.0.113.${1 + engines.length}`;
  const gw = new Engine({ role: 'gateway', ggr, pgr: '10.0.0.1', timeouts: { reservationMs: 86_400_000 } });
  engines.push(gw);
  const here = Math.min(PER_ENGINE, flows - done);
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
    const out = agent.process(first, 'out');
    if (out.verdict !== 'accept' || !out.packet)
      throw new Error(`agent did not protect flow ${id}: ${JSON.stringify(out)}`);
    const inb = gw.process(out.packet, 'in');
    if (inb.verdict !== 'accept')
      throw new Error(`gateway did not bind flow ${id}: ${inb.reason ?? inb.verdict}`);
    agent.removeFlow(id);
    // The 'bound' events, taken as they come (the daemon's onEvents gets them after each batch of
    // packets): left to pile up, 125 000 of them per engine would be measured as if the gateway
    // held them.
    if (k % 1024 === 1023) gw.pollEvents();
  }
  gw.pollEvents();
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const after = mem();
const bound = engines.reduce((n, e) => n + e.stats().bound, 0);
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
