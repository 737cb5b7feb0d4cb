// The agent engine's own pool of reserved ports (engine/pool.rs) through the typed API: a new
// flow's first packet takes a pooled port and leaves at once; withdraw races; the gateway accepts
// what left.
import t from 'tap';
import { Engine, directionKeys, POOL_FIRST_ID } from '../index.ts';
import { tcp, udp, nat, keys, addrs, SYN, ACK } from '../packets.ts';

const PEN = '192.168.1.10';
const VIN = '100.64.0.5';
const GGR = '203.0.113.1';
const GHR = '198.51.100.7';
const PGR = '10.0.0.1';
const PIN = '10.0.0.11';
const D = 80;
const M = 61000;

const k = (t: number) => ({ enToGw: keys(t % 200), gwToEn: keys((t + 1) % 200) });
const agent = () => new Engine({ role: 'agent', vinNet: '100.64.0.0/16' });
const pooled = (t: number, proto: 'tcp' | 'udp' = 'tcp', validMs = 60_000) => ({
  proto,
  vin: VIN,
  ggr: GGR,
  t,
  serial: t + 1000,
  validMs,
  ...directionKeys('agent', k(t)),
});
const syn = (s: number) => tcp(PEN, s, VIN, D, 1000 + s, 0, SYN);

t.test('a SYN to a VIN with a pooled port leaves translated at once, and says so after', async (t) => {
  const a = agent();
  a.poolAdd(pooled(20001));
  const r = a.process(syn(40000), 'out');
  t.equal(r.verdict, 'accept');
  const wire = addrs(r.packet!);
  t.same([wire.dst, wire.dport, wire.src, wire.sport], [GGR, 20001, PEN, 40000]);
  t.same(a.pollEvents(), [
    {
      type: 'pool-taken',
      id: POOL_FIRST_ID,
      proto: 'tcp',
      t: 20001,
      serial: 21001,
      src: PEN,
      sport: 40000,
      dst: VIN,
      dport: D,
    },
  ]);
  const st = a.stats();
  t.same([st.poolTaken, st.held], [1, 0]);

  // The gateway that reserved port t with the same keys accepts it and binds in-band.
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  gw.addReservation({ id: 7, proto: 'tcp', t: 20001, pin: PIN, ...directionKeys('gateway', k(20001)) });
  const g = gw.process(nat(r.packet!, true, [PEN, 40000], [GHR, M]), 'in');
  t.equal(g.verdict, 'accept');
  t.same([addrs(g.packet!).dst, addrs(g.packet!).dport], [PIN, D]);

  // The flow's first inbound packet (SYN-ACK) is accepted by the flow the engine made.
  const synack = gw.process(tcp(PIN, D, PGR, 20001, 5000, 40000 + 1001, SYN | ACK), 'out');
  const back = a.process(nat(synack.packet!, false, [PEN, 40000], [GHR, M]), 'in');
  t.equal(back.verdict, 'accept');
  t.same([addrs(back.packet!).src, addrs(back.packet!).sport], [VIN, D]);
});

t.test('two SYNs race for the last port: one takes it, the other is held for TypeScript', async (t) => {
  const a = agent();
  a.poolAdd(pooled(20001));
  t.equal(a.process(syn(40000), 'out').verdict, 'accept');
  t.equal(a.process(syn(40001), 'out').verdict, 'held');
  t.same(
    a.pollEvents().map((e) => e.type),
    ['pool-taken', 'held'],
  );
});

t.test('withdraw answers whether the engine took the port, atomically with the takes', async (t) => {
  const a = agent();
  a.poolAdd(pooled(20001));
  a.poolAdd(pooled(20002));
  a.process(syn(40000), 'out'); // takes 20001, the oldest
  t.equal(a.poolWithdraw('tcp', 20001), false, 'taken: TypeScript must not use it');
  t.equal(a.poolWithdraw('tcp', 20002), true, 'still pooled: withdrawn');
  t.equal(a.poolWithdraw('tcp', 20002), false, 'withdrawn once');
  t.equal(a.process(syn(40001), 'out').verdict, 'held', 'a withdrawn port is never taken');
});

t.test('cleared, expired and excluded ports are not taken; a UDP datagram takes a UDP port', async (t) => {
  const a = agent();
  a.poolAdd(pooled(20001));
  t.equal(a.poolClear(), 1);
  t.equal(a.process(syn(40000), 'out').verdict, 'held', 'cleared');
  a.poolAdd(pooled(20002, 'tcp', 0));
  t.equal(a.process(syn(40001), 'out').verdict, 'held', 'expired');
  a.poolAdd(pooled(20003));
  a.poolExclude(VIN, D, true);
  t.equal(a.process(syn(40002), 'out').verdict, 'held', 'VIN:d excluded (FTP alias)');
  a.poolExclude(VIN, D, false);
  t.equal(a.process(syn(40003), 'out').verdict, 'accept', 'included again');
  a.poolAdd(pooled(20004, 'udp'));
  const u = a.process(udp(PEN, 5353, VIN, 53, Buffer.from('q')), 'out');
  t.equal(u.verdict, 'accept');
  t.equal(addrs(u.packet!).dport, 20004);
});

t.test('the pool is the agent role only, and ports must lead into the VIN range', async (t) => {
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  t.throws(() => gw.poolAdd(pooled(20001)), /agent/);
  const a = agent();
  t.throws(() => a.poolAdd({ ...pooled(20001), vin: '10.9.9.9' }), /VIN range/);
  a.poolAdd(pooled(20001));
  t.throws(() => a.poolAdd({ ...pooled(20001), vin: '100.64.0.6' }), /another VIN/);
});

t.test('bad arguments are refused with a clear error and change nothing', async (t) => {
  const a = agent();
  t.throws(
    () => a.poolAdd({ ...pooled(20001), tx: { ...pooled(20001).tx, encKey: Buffer.alloc(15) } }),
    /encKey must be 16 bytes/,
  );
  t.throws(() => a.poolAdd({ ...pooled(20001), t: 70000 }), /t/);
  t.throws(() => a.poolAdd({ ...pooled(20001), validMs: -1 }), /validMs/);
  t.throws(() => a.poolWithdraw('icmp' as never, 20001), /proto/);
  t.throws(() => a.poolExclude('not-an-ip', 80, true), /vin/);
  t.equal(a.poolClear(), 0, 'nothing was pooled');
});
