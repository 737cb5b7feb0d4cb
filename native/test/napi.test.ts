// The N-API surface: the typed API end to end in memory, events and rules (wrong arguments:
// napi-arguments.test.ts).
import t from 'tap';
import {
  Engine,
  native,
  directionKeys,
  agentRules,
  gatewayRules,
  PROCESS_DROP,
  PROCESS_HELD,
  DROP_REASONS,
  ENGINE_COUNTERS,
  ENGINE_EVENT_TYPES,
  type EngineEvent,
} from '../index.ts';
import { tcp, udp, nat, keys, addrs, payload, checksumsOk, SYN, ACK, PSH, FIN } from '../packets.ts';

const PEN = '192.168.1.10';
const VIN = '100.64.0.5';
const GGR = '203.0.113.1';
const GHR = '198.51.100.7';
const PGR = '10.0.0.1';
const PIN = '10.0.0.11';
const S = 40000;
const D = 80;
const T = 20001;
const M = 61000;

function pair() {
  const agent = new Engine({ role: 'agent', vinNet: '100.64.0.0/16' });
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
  const k = { enToGw: keys(1), gwToEn: keys(2) };
  gw.addReservation({ id: 7, proto: 'tcp', t: T, pin: PIN, ...directionKeys('gateway', k) });
  return { agent, gw, k };
}

const SYN_MSS = Buffer.from([2, 4, 5, 0xb4]);
const agentFlow = (k: ReturnType<typeof pair>['k']) => ({
  id: 1,
  proto: 'tcp' as const,
  pen: PEN,
  s: S,
  vin: VIN,
  d: D,
  ggr: GGR,
  t: T,
  ...directionKeys('agent', k),
});
const toGw = (p: Buffer) => nat(p, true, [PEN, S], [GHR, M]);
const toEn = (p: Buffer) => nat(p, false, [PEN, S], [GHR, M]);

/** The agent held the first SYN and released it once its flow was added: the SYN on the wire. */
function heldThenReleased() {
  const pr = pair();
  const syn = tcp(PEN, S, VIN, D, 1000, 0, SYN, Buffer.alloc(0), SYN_MSS);
  pr.agent.process(syn, 'out');
  pr.agent.addFlow(agentFlow(pr.k));
  return { ...pr, syn, wire: pr.agent.takeReleased()[0]!.packet };
}

/** A bound, established TCP flow and one protected data segment on its way to the gateway. */
function established() {
  const pr = heldThenReleased();
  pr.gw.process(toGw(pr.wire), 'in');
  const synack = pr.gw.process(tcp(PIN, D, PGR, T, 5000, 1001, SYN | ACK), 'out');
  pr.agent.process(toEn(synack.packet!), 'in');
  const msg = Buffer.from('hello intra1');
  const data = pr.agent.process(tcp(PEN, S, VIN, D, 1001, 5001, ACK | PSH, msg), 'out');
  return { ...pr, msg, data: toGw(data.packet!) };
}

t.test('the first SYN to a VIN is held and reported', async (t) => {
  const { agent } = pair();
  const syn = tcp(PEN, S, VIN, D, 1000, 0, SYN, Buffer.alloc(0), SYN_MSS);
  t.same(agent.process(syn, 'out'), { verdict: 'held' });
  t.same(agent.pollEvents(), [{ type: 'held', proto: 'tcp', src: PEN, sport: S, dst: VIN, dport: D }]);
});

t.test('addFlow releases the held SYN translated for GGR:t, 20 bytes longer', async (t) => {
  const pr = pair();
  const syn = tcp(PEN, S, VIN, D, 1000, 0, SYN, Buffer.alloc(0), SYN_MSS);
  pr.agent.process(syn, 'out');
  pr.agent.addFlow(agentFlow(pr.k));
  const rel = pr.agent.takeReleased();
  t.equal(rel.length, 1);
  const wire = rel[0]!.packet;
  t.same(addrs(wire), { src: PEN, sport: S, dst: GGR, dport: T });
  t.equal(wire.length, syn.length + 20, 'the initial SYN grows by the 20-byte SYN option');
  t.ok(checksumsOk(wire));
});

t.test('the gateway passes the SYN to PIN:d from PGR:t and reports its source', async (t) => {
  const { gw, wire } = heldThenReleased();
  const r = gw.process(toGw(wire), 'in');
  t.equal(r.verdict, 'accept');
  t.same(addrs(r.packet!), { src: PGR, sport: T, dst: PIN, dport: D });
  t.ok(checksumsOk(r.packet!));
  t.same(gw.pollEvents(), [{ type: 'bound', id: 7, proto: 'tcp', t: T, ghr: GHR, m: M, pin: PIN, d: D }]);
  t.equal(gw.flowStats(7)!.bound, false, 'a SYN (perhaps a replay) only makes its source a candidate');
});

t.test('the binding commits on the first verified segment newer than the SYN', async (t) => {
  const { gw, data } = established();
  t.equal(gw.process(data, 'in').verdict, 'accept');
  t.equal(gw.flowStats(7)!.bound, true);
  t.same(gw.flowStats(7)!.ghr, GHR);
});

t.test('the SYN-ACK goes to GHR:m and reaches the application from VIN:d', async (t) => {
  const { agent, gw, wire } = heldThenReleased();
  gw.process(toGw(wire), 'in');
  const synack = gw.process(tcp(PIN, D, PGR, T, 5000, 1001, SYN | ACK), 'out');
  t.equal(synack.verdict, 'accept');
  t.same(addrs(synack.packet!), { src: GGR, sport: T, dst: GHR, dport: M });
  const back = agent.process(toEn(synack.packet!), 'in');
  t.equal(back.verdict, 'accept');
  t.same(addrs(back.packet!), { src: VIN, sport: D, dst: PEN, dport: S });
});

t.test('data is encrypted on the wire and delivered in clear to IN', async (t) => {
  const { gw, msg, data } = established();
  t.notSame(payload(data), msg, 'encrypted on the wire');
  t.same(payload(gw.process(data, 'in').packet!), msg);
});

t.test('a tampered packet is dropped, counted and reported', async (t) => {
  const { gw, data } = established();
  gw.pollEvents();
  const bad = Buffer.from(data);
  bad[bad.length - 1]! ^= 1;
  t.same(gw.process(bad, 'in'), { verdict: 'drop', reason: 'bad-mac' });
  const vf = gw.pollEvents().filter((e) => e.type === 'verify-failed');
  t.equal(vf.length, 1);
  t.equal(gw.stats().verifyFailed, 1);
  t.equal(gw.stats().drops['bad-mac'], 1);
  t.equal(gw.flowStats(7)!.verifyFailed, 1);
});

t.test('stats and flowStats report the bound, established flow', async (t) => {
  const { gw, data } = established();
  gw.process(data, 'in');
  const st = gw.stats();
  t.equal(st.bound, 1);
  t.equal(st.backend, null);
  const fs = gw.flowStats(7)!;
  t.equal(fs.state, 'established');
  t.equal(fs.ghr, GHR);
  t.equal(fs.m, M);
  t.equal(gw.flowStats(12345), null);
});

t.test('flowStats counts the payload apart from whole packets, and names a FIN', async (t) => {
  const { gw, data, msg } = established();
  gw.process(data, 'in');
  const fs = gw.flowStats(7)!;
  t.equal(fs.payloadIn, msg.length, 'the verified data segment’s payload');
  t.ok(fs.bytesIn >= fs.payloadIn + 40 * fs.pktsIn, 'whole packets include their headers');
  t.equal(fs.close, 'none');
  t.equal(gw.process(tcp(PIN, D, PGR, T, 5001, 1001 + msg.length, ACK | FIN), 'out').verdict, 'accept');
  t.equal(gw.flowStats(7)!.close, 'fin');
});

t.test(
  'probe(): the agent’s probe re-binds the flow at the gateway from a new source and is consumed',
  async (t) => {
    const { agent, gw, data } = established();
    t.equal(gw.process(data, 'in').verdict, 'accept');
    t.equal(agent.probe(), 1, 'every live flow: one');
    const [out] = agent.takeReleased();
    t.equal(out!.hook, 'out');
    t.ok(checksumsOk(out!.packet));
    const moved = nat(out!.packet, true, [PEN, S], [GHR, M + 1]);
    t.same(gw.process(moved, 'in'), { verdict: 'drop', reason: 'probe' });
    t.equal(gw.stats().probesReceived, 1);
    t.equal(gw.stats().roamed, 1);
    t.equal(gw.stats().dropped, 0, 'a consumed probe is no drop');
    t.equal(gw.flowStats(7)!.m, M + 1);
    t.equal(agent.stats().probesSent, 1);
    t.equal(agent.probe(99), 0, 'no such flow');
    t.equal(gw.probe(), 0, 'the gateway makes none');
  },
);

t.test('removeFlow removes a flow once', async (t) => {
  const { gw } = established();
  t.ok(gw.removeFlow(7));
  t.notOk(gw.removeFlow(7));
});

t.test('resetFlow (agent) removes a live flow and sends its application a probe; once', async (t) => {
  const { agent } = established();
  agent.takeReleased();
  t.ok(agent.resetFlow(1));
  t.notOk(agent.resetFlow(1), 'gone');
  const probe = agent.takeReleased();
  t.equal(probe.length, 1, 'one out-of-window ACK toward the application');
  t.same(addrs(probe[0]!.packet), { src: VIN, sport: D, dst: PEN, dport: S });
  t.equal(probe[0]!.hook, 'in');
  t.throws(() => pair().gw.resetFlow(7), /for the agent/);
});

t.test(
  'flow snapshots: a bound TCP flow has one; a new engine imports it and carries the flow',
  async (t) => {
    const { gw, data, msg } = established();
    t.same(gw.flowSnapshots(), [], 'none before the binding commits (EN’s first segment after the SYN)');
    gw.process(Buffer.from(data), 'in');
    const all = gw.flowSnapshots();
    t.equal(all.length, 1);
    t.equal(all[0]!.id, 7);
    t.same(gw.flowSnapshot(7), all[0]!.snapshot);
    t.equal(gw.flowSnapshot(99), null);
    const again = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR });
    const k = { enToGw: keys(1), gwToEn: keys(2) };
    again.importFlow(
      { id: 7, proto: 'tcp', t: T, pin: PIN, ...directionKeys('gateway', k) },
      all[0]!.snapshot,
    );
    t.same(payload(again.process(data, 'in').packet!), msg, 'the restarted engine verifies the flow');
    t.throws(
      () =>
        again.importFlow(
          { id: 8, proto: 'tcp', t: T + 1, pin: PIN, ...directionKeys('gateway', k) },
          all[0]!.snapshot,
        ),
      /ports differ/,
    );
  },
);

/** An agent that punts DNS answers (UDP from port 53) to TypeScript. */
const dnsAgent = () =>
  new Engine({ role: 'agent', vinNet: '100.64.0.0/16', punt: [{ hook: 'in', proto: 'udp', sport: 53 }] });
const dnsAnswer = () => udp('8.8.8.8', 53, PEN, 5353, Buffer.from('answer'));

t.test('failHeld answers a held datagram with ICMP destination unreachable', async (t) => {
  const agent = dnsAgent();
  const q = udp(PEN, 5353, VIN, 53, Buffer.from('query'));
  t.equal(agent.process(q, 'out').verdict, 'held');
  t.equal(agent.failHeld({ proto: 'udp', src: PEN, sport: 5353, dst: VIN, dport: 53 }, 'unreachable'), 1);
  const icmp = agent.takeReleased();
  t.equal(icmp.length, 1);
  t.equal(icmp[0]!.hook, 'in');
  t.equal(icmp[0]!.packet[9], 1, 'ICMP');
  t.equal(icmp[0]!.packet[20], 3, 'destination unreachable');
});

t.test('onEvents delivers events on the JS thread without keeping node alive', async (t) => {
  const agent = dnsAgent();
  const got: EngineEvent[] = [];
  const seen = new Promise<void>((resolve) => {
    agent.onEvents((evs) => {
      got.push(...evs);
      if (got.some((e) => e.type === 'punt')) resolve();
    });
  });
  t.equal(agent.process(udp(PEN, 5353, VIN, 53, Buffer.from('query')), 'out').verdict, 'held');
  const dns = dnsAnswer();
  t.equal(agent.process(dns, 'in').verdict, 'punted');
  // The engine's thread-safe function does not keep node alive by itself.
  const keepAlive = setTimeout(() => {}, 5000);
  await seen;
  clearTimeout(keepAlive);
  const punt = got.find((e) => e.type === 'punt');
  t.ok(punt && punt.type === 'punt' && punt.packet.equals(dns));
  t.ok(got.some((e) => e.type === 'held'));
});

t.test('a punted packet passes with a same-length replacement, once', async (t) => {
  const agent = dnsAgent();
  const dns = dnsAnswer();
  const pr = agent.process(dns, 'in');
  const rep = Buffer.from(dns);
  rep.write('ANSWER', rep.length - 6);
  t.equal(agent.verdict(pr.puntId!, true, rep), true);
  const out = agent.takeReleased();
  t.equal(out.length, 1);
  t.equal(payload(out[0]!.packet).toString(), 'ANSWER');
  t.ok(checksumsOk(out[0]!.packet));
  t.equal(agent.verdict(pr.puntId!, true), false, 'a punt id is used once');
});

t.test(
  'gateway ALG: FTP control segments are punted with their flow; a longer reply shifts later numbers',
  async (t) => {
    const agent = new Engine({ role: 'agent', vinNet: '100.64.0.0/16' });
    const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR, algPorts: [21] });
    const k = { enToGw: keys(1), gwToEn: keys(2) };
    gw.addReservation({ id: 7, proto: 'tcp', t: T, pin: PIN, ...directionKeys('gateway', k) });
    agent.addFlow({
      id: 1,
      proto: 'tcp',
      pen: PEN,
      s: S,
      vin: VIN,
      d: 21,
      ggr: GGR,
      t: T,
      ...directionKeys('agent', k),
    });
    /** EN -> IN: after the binding SYN, segments go to the ALG (translated) before IN gets them. */
    const up = (p: Buffer) => {
      const r = gw.process(nat(agent.process(p, 'out').packet!, true, [PEN, S], [GHR, M]), 'in');
      if (r.verdict !== 'punted') return r;
      t.match(
        gw.pollEvents().find((e) => e.type === 'punt'),
        { hook: 'in', flow: 7 },
      );
      t.ok(gw.verdict(r.puntId!, true));
      return { verdict: 'accept', packet: gw.takeReleased()[0]!.packet };
    };
    /** IN -> EN through the ALG: returns what the application on EN reads. */
    const down = (p: Buffer, rewrite?: (payload: Buffer) => Buffer) => {
      const r = gw.process(p, 'out');
      t.equal(r.verdict, 'punted');
      const ev = gw.pollEvents().find((e) => e.type === 'punt');
      t.match(ev, { type: 'punt', id: r.puntId, hook: 'out', flow: 7 });
      const rep = rewrite
        ? tcp(PIN, 21, PGR, T, p.readUInt32BE(24), p.readUInt32BE(28), p[33]!, rewrite(payload(p)))
        : undefined;
      t.ok(gw.verdict(r.puntId!, true, rep));
      const [rel] = gw.takeReleased();
      return agent.process(nat(rel!.packet, false, [PEN, S], [GHR, M]), 'in').packet!;
    };
    t.equal(up(tcp(PEN, S, VIN, 21, 100, 0, SYN)).verdict, 'accept');
    down(tcp(PIN, 21, PGR, T, 9000, 101, SYN | ACK));
    const pasv = Buffer.from('227 Entering Passive Mode (10,0,0,11,195,80).\r\n');
    const atEn = down(tcp(PIN, 21, PGR, T, 9001, 101, ACK | PSH, pasv), (b) =>
      Buffer.from(b.toString().replace('10,0,0,11', '100,64,0,5')),
    );
    t.equal(payload(atEn).toString(), '227 Entering Passive Mode (100,64,0,5,195,80).\r\n');
    const next = down(tcp(PIN, 21, PGR, T, 9001 + pasv.length, 101, ACK | PSH, Buffer.from('150 ok\r\n')));
    t.equal(
      next.readUInt32BE(24),
      9001 + pasv.length + 1,
      'the next segment is shifted by the one byte the reply grew',
    );
    const ackAtIn = up(tcp(PEN, S, VIN, 21, 101, 9001 + pasv.length + 1 + 8, ACK)).packet!;
    t.equal(ackAtIn.readUInt32BE(28), 9001 + pasv.length + 8, 'and EN’s ack is shifted back for IN');
    const bad = gw.process(tcp(PIN, 21, PGR, T, 9100, 101, ACK | PSH, Buffer.from('x')), 'out');
    t.throws(
      () => gw.verdict(bad.puntId!, true, tcp(PIN, 21, PGR, T, 9101, 101, ACK | PSH, Buffer.from('x'))),
      /same segment|keep the segment/,
      'a replacement that is another segment is refused',
    );
    t.equal(gw.stats().punted, 5, 'every segment of the FTP flow after the binding SYN went to the ALG');
  },
);

t.test('processInto: allocation-free path gives the same bytes as process()', async (t) => {
  const a1 = pair();
  const a2 = pair();
  for (const p of [a1, a2]) {
    p.agent.addFlow({
      id: 1,
      proto: 'tcp',
      pen: PEN,
      s: S,
      vin: VIN,
      d: D,
      ggr: GGR,
      t: T,
      ...directionKeys('agent', p.k),
    });
  }
  const out = Buffer.alloc(65536);
  for (const [seq, flags, data] of [
    [1000, SYN, ''],
    [1001, ACK | PSH, 'first data'],
    [1011, ACK, 'more'],
  ] as const) {
    const pkt = tcp(PEN, S, VIN, D, seq, 5001, flags, Buffer.from(data));
    const r = a1.agent.process(pkt, 'out');
    const n = a2.agent.processInto(pkt, 'out', out);
    t.equal(n, r.packet!.length);
    t.same(out.subarray(0, n), r.packet);
  }
  // Same buffer in and out; codes for held / drop; out too small.
  const inplace = Buffer.alloc(2000);
  const syn = tcp(PEN, S + 1, VIN, D, 1, 0, SYN);
  syn.copy(inplace);
  t.equal(a2.agent.processInto(inplace.subarray(0, syn.length), 'out', inplace), PROCESS_HELD);
  t.equal(a2.agent.processInto(Buffer.alloc(30), 'out', out), PROCESS_DROP);
  t.throws(
    () =>
      a2.agent.processInto(tcp(PEN, S, VIN, D, 1015, 5001, ACK, Buffer.alloc(100)), 'out', Buffer.alloc(50)),
    /too small/,
  );
  t.throws(() => a2.agent.processInto(syn, 'out', 'buffer' as never), TypeError);
  t.equal(a2.agent.stats().dropped, 1);
});

t.test('expiry by timeout reports events', async (t) => {
  const gw = new Engine({ role: 'gateway', ggr: GGR, pgr: PGR, timeouts: { reservationMs: 20 } });
  gw.addReservation({ id: 3, proto: 'udp', t: 30000, pin: PIN, tx: keys(1), rx: keys(2) });
  t.equal(gw.stats().flows, 1);
  await new Promise((r) => setTimeout(r, 40));
  gw.sweep();
  t.equal(gw.stats().flows, 0);
  const none = {
    pktsOut: 0,
    bytesOut: 0,
    payloadOut: 0,
    pktsIn: 0,
    bytesIn: 0,
    payloadIn: 0,
    verifyFailed: 0,
  };
  t.same(gw.pollEvents(), [
    { type: 'expired', id: 3, proto: 'udp', t: 30000, state: 'reserved', close: 'none', ...none },
  ]);
});

t.test(
  'rule helpers use --queue-bypass only where the agent merely watches (outbound DNS queries)',
  async (t) => {
    const rules = [
      ...agentRules({
        vinNet: '100.64.0.0/16',
        ggr: GGR,
        ports: '20000:29999',
        outQueue: 0,
        inQueue: 1,
        dns: { zones: ['corp.example'], resolvers: [GGR] },
      }),
      ...gatewayRules({
        ggr: GGR,
        pgr: PGR,
        ports: '20000:29999',
        inQueue: 0,
        outQueue: 1,
        wan: 'wan0',
        lan: 'lan0',
      }),
    ];
    t.ok(rules.length >= 11);
    const queued = rules.filter((r) => r.args.includes('NFQUEUE'));
    const bypass = queued.filter((r) => r.args.includes('--queue-bypass'));
    t.equal(bypass.length, 1, 'one rule');
    t.same(
      bypass[0]!.args.slice(0, 4),
      ['-p', 'udp', '--dport', '53'],
      'the outbound DNS query of a marked (zone) connection',
    );
    t.ok(
      queued.some(
        (r) => r.args.includes('--sport') && r.args.includes('53') && !r.args.includes('--queue-bypass'),
      ),
      'its answers are queued without bypass: dropped while the agent is down',
    );
  },
);

t.test(
  'gateway rules take each side only from its own interface, after strict reverse-path filtering',
  async (t) => {
    const rules = gatewayRules({
      ggr: GGR,
      pgr: PGR,
      ports: '20000:29999',
      inQueue: 0,
      outQueue: 1,
      wan: 'wan0',
      lan: 'lan0',
    });
    const iface = (r: { args: string[] }) => r.args[r.args.indexOf('-i') + 1];
    t.same(
      rules.slice(0, 2).map((r) => [iface(r), r.args.includes('rpfilter'), r.args.at(-1)]),
      [
        ['wan0', true, 'DROP'],
        ['lan0', true, 'DROP'],
      ],
      'first: drop what the routing table would not answer through the interface it came in on',
    );
    const queued = rules.filter((r) => r.args.includes('NFQUEUE'));
    t.equal(queued.length, 6);
    for (const r of queued) {
      const toGgr = r.args.includes(GGR);
      t.equal(iface(r), toGgr ? 'wan0' : 'lan0', r.args.join(' '));
      t.equal(r.args.at(-1), toGgr ? '0' : '1');
    }
  },
);

t.test('the addon reports the counters names.generated.ts lists, in order', async (t) => {
  const st = new Engine({ role: 'agent', vinNet: '100.64.0.0/16' }).stats();
  const counters = Object.keys(st).filter((k) => !['drops', 'flows', 'heldNow', 'backend'].includes(k));
  t.same(counters, [...ENGINE_COUNTERS]);
});

t.test('the addon counts drops under the reasons names.generated.ts lists, in order', async (t) => {
  const st = new Engine({ role: 'agent', vinNet: '100.64.0.0/16' }).stats();
  t.same(Object.keys(st.drops), [...DROP_REASONS]);
  t.ok(Object.values(st.drops).every((v) => v === 0));
});

t.test('the addon emits the event types names.generated.ts lists', async (t) => {
  t.same(native().eventTypes, [...ENGINE_EVENT_TYPES]);
});
