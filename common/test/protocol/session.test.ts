// An established session through both state machines: the session channel (MAC, replay window,
// timestamps, answer cache, retransmission), keepalive and expiry, a restarted gateway, a NAT that
// re-maps the control flow, and input that is garbage or misdirected.
import t from 'tap';
import {
  decode,
  encode,
  GatewayControl,
  resetToken,
  sealMessage,
  type AgentEvent,
  type SessionMessage,
} from '../../src/protocol/index.ts';
import { fuzzRandom } from '../fuzz-random.ts';
import { aliceAgent, RESET_KEY, T0, login, setup, Wire } from './harness.ts';
import { handshakeError } from '../../src/protocol/gateway-handshake.ts';
import { sessionRef } from '../../src/protocol/channel.ts';

const IN1 = 'intra1.corp.example';

function up() {
  const s = setup();
  login(s.wire);
  return s;
}
/** A session that reserved 4 TCP ports for IN1: the RESERVE and RESERVED are on the wire. */
function reserved() {
  const s = up();
  s.wire.run(s.agent.reserve(IN1, 6, T0), T0);
  return { ...s, reserve: s.wire.toGateway.at(-1)!, answer: s.wire.toAgent.at(-1)! };
}

// ---------------------------------------------------------------------------------------------
// Duplicates, replays, forgeries

t.test(
  'a duplicate request is answered from the cache with the very same bytes, nothing twice',
  async (t) => {
    const { gw, wire, reserve, answer } = reserved();
    const dup = gw.handleDatagram(reserve, wire.from, T0 + 100);
    t.ok(dup.send[0]!.data.equals(answer), 'duplicate → the very same RESERVED');
    t.equal(gw.stats().reservations, 4, 'nothing reserved twice');
  },
);

t.test('a request older than the replay window is refused (replay) and does nothing', async (t) => {
  const { agent, gw, wire, reserve } = reserved();
  // push the window: 70 keepalives, then the old RESERVE is a replay
  for (let i = 0; i < 70; i++) wire.run(agent.keepalive(T0 + 200 + i), T0 + 200 + i);
  const rep = gw.handleDatagram(reserve, wire.from, T0 + 1000);
  t.match(decode(rep.send[0]!.data), { type: 'ERROR', reason: 'replay' });
  t.ok(rep.events.some((e) => e.kind === 'dropped' && e.reason === 'replay'));
  t.equal(gw.stats().reservations, 4);
});

t.test('a message with a tampered MAC is refused (bad-mac)', async (t) => {
  const { agent, gw, wire } = up();
  const ka = Buffer.from(agent.keepalive(T0 + 2000).send[0]!.data);
  ka[ka.length - 1]! ^= 1;
  const bad = gw.handleDatagram(ka, wire.from, T0 + 2000);
  t.match(decode(bad.send[0]!.data), { type: 'ERROR', reason: 'bad-mac' });
});

t.test('a message with a tampered header and the same MAC is refused (bad-mac)', async (t) => {
  const { agent, gw, wire } = up();
  const ka2 = Buffer.from(agent.keepalive(T0 + 2000).send[0]!.data);
  ka2[12]! ^= 1;
  t.match(decode(gw.handleDatagram(ka2, wire.from, T0 + 2001).send[0]!.data), { reason: 'bad-mac' });
});

t.test(
  'a forged message from another address gets no answer at all (no reflection), but is counted',
  async (t) => {
    const { agent, gw } = up();
    const ka3 = Buffer.from(agent.keepalive(T0 + 2000).send[0]!.data);
    ka3[ka3.length - 1]! ^= 1;
    const r3 = gw.handleDatagram(ka3, { addr: '192.0.2.66', port: 4 }, T0 + 2002);
    t.equal(r3.send.length, 0);
    t.ok(r3.events.some((e) => e.kind === 'dropped' && e.reason === 'bad-mac'));
  },
);

t.test('reordering inside the window is accepted', async (t) => {
  const { agent, gw, wire } = up();
  const a = agent.reserve(IN1, 6, T0).send[0]!.data;
  const b = agent.reserve(IN1, 17, T0).send[0]!.data;
  const rb = gw.handleDatagram(b, wire.from, T0);
  const ra = gw.handleDatagram(a, wire.from, T0);
  t.match(decode(rb.send[0]!.data), { type: 'RESERVED', proto: 17 });
  t.match(
    decode(ra.send[0]!.data),
    { type: 'RESERVED', proto: 6 },
    'older seq delivered later still accepted',
  );
});

t.test('a message more than 60 s off the gateway clock is refused (stale-timestamp)', async (t) => {
  const { agent, gw, wire } = up();
  const late = agent.keepalive(T0).send[0]!.data;
  const r = gw.handleDatagram(late, wire.from, T0 + 61_000);
  t.match(decode(r.send[0]!.data), { type: 'ERROR', reason: 'stale-timestamp' });
});

// ---------------------------------------------------------------------------------------------
// Loss

t.test('agent: loss → retransmit with backoff, same bytes; timeout after 4 tries', async (t) => {
  const { agent } = up();
  const first = agent.reserve(IN1, 6, T0);
  const sent = [first.send[0]!.data];
  t.equal(agent.nextDeadline(), T0 + 250);
  for (const at of [250, 750, 1750]) {
    const r = agent.poll(T0 + at);
    t.equal(r.send.length, 1, `retransmission at +${at} ms`);
    sent.push(r.send[0]!.data);
  }
  t.ok(
    sent.every((s) => s.equals(sent[0]!)),
    'identical bytes (same seq)',
  );
  const end = agent.poll(T0 + 3750);
  t.match(end.events, [{ kind: 'reserve-failed', reason: 'timeout' }]);
});

t.test('the answer to a request that timed out is dropped by the agent as unsolicited', async (t) => {
  const { agent, wire } = up();
  const request = agent.reserve(IN1, 6, T0).send[0]!.data;
  for (const at of [250, 750, 1750, 3750]) agent.poll(T0 + at);
  // the gateway answers a late duplicate from its cache and the agent ignores the stray answer
  wire.run({ send: [{ dest: { via: 'control' }, data: request }], events: [] }, T0 + 3800);
  t.ok(wire.agentEvents.some((e) => e.kind === 'dropped' && e.reason === 'unsolicited'));
});

t.test('handshake loss: a lost HELLO and a lost COOKIE are repaired by retransmission', async (t) => {
  const { agent, gw, wire } = setup();
  let drops = 2;
  wire.lose = () => drops-- > 0; // lose the first HELLO and the second (a COOKIE) ...
  wire.run(agent.login(T0), T0);
  t.equal(agent.state, 'hello');
  wire.run(agent.poll(T0 + 250), T0 + 250); // HELLO again, COOKIE lost
  wire.run(agent.poll(T0 + 750), T0 + 750);
  t.equal(agent.state, 'up');
  t.equal(gw.stats().sessions, 1);
});

t.test('handshake loss: a lost AUTH_OK is answered again from the cache, one session', async (t) => {
  const s2 = setup();
  s2.wire.lose = (dir, d) =>
    dir === 'down' && d[3] === 0x04 && s2.wire.toAgent.filter((x) => x[3] === 0x04).length === 1;
  s2.wire.run(s2.agent.login(T0), T0);
  t.equal(s2.agent.state, 'auth');
  s2.wire.run(s2.agent.poll(T0 + 250), T0 + 250);
  t.equal(s2.agent.state, 'up');
  t.equal(s2.gw.stats().sessions, 1);
});

t.test('handshake loss: with no gateway at all the agent fails after 4 HELLOs', async (t) => {
  const s3 = setup();
  s3.wire.lose = () => true;
  s3.wire.run(s3.agent.login(T0), T0);
  let hellos = 1;
  for (let now = T0; now <= T0 + 4000; now += 50) {
    const r = s3.agent.poll(now);
    hellos += r.send.length;
    s3.wire.agentEvents.push(...r.events);
  }
  t.equal(hellos, 4);
  t.equal(s3.agent.state, 'failed');
});

// ---------------------------------------------------------------------------------------------
// Keepalive and expiry

t.test('keepalives keep the session, its reservations and the agent pool alive', async (t) => {
  const { agent, gw, wire } = reserved();
  t.equal(agent.nextDeadline(), T0 + 25_000, 'next keepalive');
  for (let now = T0 + 25_000; now <= T0 + 200_000; now += 25_000) {
    wire.run(agent.poll(now), now);
    wire.fromGateway(gw.poll(now), now);
  }
  t.equal(gw.stats().reservations, 4, 'kept alive');
  t.equal(agent.poolSize(IN1, 6), 4);
});

t.test('an agent that disappears: its session ends idle and its ports go back to the pool', async (t) => {
  const { gw, dir } = reserved();
  const r = gw.poll(T0 + 121_000);
  t.equal(gw.stats().sessions, 0);
  t.ok(r.events.some((e) => e.kind === 'session-down' && e.reason === 'idle'));
  t.equal(dir.released.length, 4, 'ports back in the pool');
});

t.test('unanswered keepalives: the session is kept for the grace, probing, then ends', async (t) => {
  const { agent, wire } = up();
  wire.lose = () => true;
  const events: AgentEvent[] = [];
  let sent = 0;
  let now = T0 + 25_000;
  for (; now < T0 + 25_000 + 100_000; now += 50) {
    const r = agent.poll(now);
    events.push(...r.events);
    sent += r.send.length;
  }
  t.match(events, [{ kind: 'gateway-unreachable' }], 'reported once; the session stays');
  t.equal(agent.state, 'up');
  t.ok(sent > 20, `keepalives keep asking meanwhile (${sent} sent)`);
  // the grace is the reservation lifetime AUTH_OK announced (120 s), from the first timeout
  for (; now < T0 + 25_000 + 130_000; now += 50) events.push(...agent.poll(now).events);
  t.match(events.slice(1), [{ kind: 'session-down', reason: 'timeout' }]);
  t.equal(agent.state, 'idle');
});

t.test('a gateway that answers again within the grace keeps the session', async (t) => {
  const { agent, wire } = up();
  wire.lose = () => true;
  let now = T0 + 25_000;
  for (; now < T0 + 40_000; now += 50) wire.run(agent.poll(now), now);
  wire.lose = () => false;
  for (; now < T0 + 45_000; now += 50) wire.run(agent.poll(now), now);
  const kinds = wire.agentEvents.map((e) => e.kind);
  t.ok(kinds.includes('gateway-unreachable'));
  t.ok(kinds.includes('gateway-reachable'));
  t.notOk(kinds.includes('session-down'));
  t.equal(agent.state, 'up');
});

/** A gateway with a 10-minute session lifetime and no idle end, and an agent, driven by deadlines only. */
function byDeadlines(until: number) {
  const { dir } = setup();
  const gw = new GatewayControl({ policy: dir, sessionLifetimeSec: 600, sessionIdleSec: 100_000 });
  const agent = aliceAgent();
  const w = new Wire(agent, gw);
  const before = gw.nextDeadline();
  login(w);
  const first = gw.nextDeadline();
  let now = T0;
  let guard = 0;
  while (now < until && guard++ < 1000) {
    const next = Math.min(gw.nextDeadline() ?? Infinity, agent.nextDeadline() ?? Infinity);
    if (!Number.isFinite(next)) break;
    now = Math.max(now, next);
    w.fromGateway(gw.poll(now), now);
    w.run(agent.poll(now), now);
  }
  return { gw, agent, w, now, before, first };
}

t.test('timers: an idle gateway has no deadline; after a login the first is the cookie cache', async (t) => {
  const { before, first } = byDeadlines(T0);
  t.equal(before, null, 'idle gateway: nothing to do');
  t.equal(first, T0 + 120_000, 'cookie cache / ephemeral key erasure first');
});

t.test(
  'timers: driven by nextDeadline only, the absolute lifetime ends the session; the agent logs in again',
  async (t) => {
    const { w, agent } = byDeadlines(T0 + 660_000);
    t.ok(
      w.gatewayEvents.some((e) => e.kind === 'session-down' && e.reason === 'expired'),
      'absolute lifetime ended it',
    );
    // after expiry the agent's next keepalive meets unknown-session and logs in again
    t.ok(w.agentEvents.some((e) => e.kind === 'session-down' && e.reason === 'unknown-session'));
    t.equal(agent.state, 'up');
  },
);

t.test('timers: at most two epoch keys, and none survives two epochs (forward secrecy)', async (t) => {
  const { gw, now } = byDeadlines(T0 + 660_000);
  t.ok(gw.stats().ephemeralKeys <= 2, 'at most two epoch keys');
  gw.poll(now + 120_000);
  t.equal(gw.stats().ephemeralKeys, 0, 'no private key survives two epochs');
});

// ---------------------------------------------------------------------------------------------
// A gateway that restarts, a NAT that re-maps

t.test(
  'gateway restart: unknown-session proven by the reset token makes the agent log in again',
  async (t) => {
    const { agent, dir, wire } = up();
    wire.gw = new GatewayControl({ policy: dir, resetKey: RESET_KEY });
    wire.run(agent.keepalive(T0 + 1000), T0 + 1000);
    const reset = decode(wire.toAgent.at(-3)!);
    t.match(
      reset,
      { type: 'HANDSHAKE_ERROR', reason: 'unknown-session', authKind: 2 },
      'the reset carries a token',
    );
    t.ok(wire.agentEvents.some((e) => e.kind === 'session-down' && e.reason === 'unknown-session'));
    t.equal(agent.state, 'up');
    t.equal(wire.gw.stats().sessions, 1);
  },
);

t.test(
  'a restarted gateway without its reset key cannot end the session at once: the agent asks, times out, logs in again',
  async (t) => {
    const { agent, dir, wire } = up();
    wire.gw = new GatewayControl({ policy: dir }); // a fresh, random reset key
    wire.run(agent.keepalive(T0 + 1000), T0 + 1000);
    t.ok(
      wire.agentEvents.some((e) => e.kind === 'dropped' && e.reason === 'unauthenticated-teardown'),
      'the unproven unknown-session is not believed',
    );
    t.notOk(
      wire.agentEvents.some((e) => e.kind === 'session-down'),
      'the session stays until the gateway fails to answer',
    );
    let now = T0 + 1000;
    for (let i = 0; i < 20 && !wire.agentEvents.some((e) => e.kind === 'session-down'); i++) {
      now = agent.nextDeadline()!;
      wire.run(agent.poll(now), now);
    }
    t.ok(
      wire.agentEvents.some((e) => e.kind === 'session-down' && e.reason === 'timeout'),
      'then the KEEPALIVE times out',
    );
    t.ok(now - T0 < 10_000, `within seconds (${now - T0 - 1000} ms)`);
  },
);

t.test('after a re-login the agent refills the pools it had', async (t) => {
  const { agent, dir, wire } = up();
  wire.run(agent.reserve(IN1, 6, T0), T0);
  wire.run(agent.reserve(IN1, 17, T0), T0);
  wire.gw = new GatewayControl({ policy: dir, resetKey: RESET_KEY }); // gateway restart
  wire.run(agent.keepalive(T0 + 1000), T0 + 1000);
  t.equal(agent.state, 'up');
  t.equal(agent.poolSize(IN1, 6), 4);
  t.equal(agent.poolSize(IN1, 17), 4);
  t.equal(wire.gw.stats().reservations, 8);
});

t.test('NAT rebinding of the control flow: the gateway follows the authenticated source', async (t) => {
  const { agent, gw, wire } = up();
  wire.from = { addr: '203.0.113.2', port: 50000 };
  wire.run(agent.keepalive(T0 + 10), T0 + 10);
  t.ok(wire.gatewayEvents.some((e) => e.kind === 'peer-moved'));
  wire.run(agent.reserve(IN1, 6, T0 + 20), T0 + 20);
  t.equal(
    wire.agentEvents.filter((e) => e.kind === 'reserved').length,
    1,
    'the answer reached the new address',
  );
  t.equal(gw.stats().sessions, 1);
});

t.test(
  'KEEPALIVE_ACK tells the agent its public address; a change is an address-changed event',
  async (t) => {
    const { agent, wire } = up();
    wire.run(agent.keepalive(T0 + 10), T0 + 10);
    t.notOk(
      wire.agentEvents.some((e) => e.kind === 'address-changed'),
      'the first answer only teaches the address',
    );
    wire.run(agent.keepalive(T0 + 20), T0 + 20);
    t.notOk(
      wire.agentEvents.some((e) => e.kind === 'address-changed'),
      'same address: nothing',
    );
    const before = `${wire.from.addr}:${wire.from.port}`;
    wire.from = { addr: wire.from.addr, port: wire.from.port + 1 };
    wire.run(agent.keepalive(T0 + 30), T0 + 30);
    const changed = wire.agentEvents.filter((e) => e.kind === 'address-changed');
    t.same(changed, [{ kind: 'address-changed', from: before, to: `${wire.from.addr}:${wire.from.port}` }]);
  },
);

// ---------------------------------------------------------------------------------------------
// Garbage and misdirected input

const keepaliveOf = (sessionId: Buffer): SessionMessage => ({
  type: 'KEEPALIVE',
  sessionId,
  seq: 1n,
  ack: 0n,
  timestamp: T0,
});

t.test('a session message for a session the gateway does not know → unknown-session', async (t) => {
  const { gw, wire } = up();
  const r = gw.handleDatagram(
    sealMessage(encode(keepaliveOf(Buffer.alloc(8, 9))), Buffer.alloc(32)),
    wire.from,
    T0,
  );
  t.match(decode(r.send[0]!.data), { type: 'HANDSHAKE_ERROR', reason: 'unknown-session' });
});

t.test('gateway drops handshake answers sent to it, without answering', async (t) => {
  const { gw, wire } = up();
  const cookie = encode({
    type: 'COOKIE',
    enNonce: Buffer.alloc(16),
    cookieTime: 1,
    cookie: Buffer.alloc(16),
    gwPub: Buffer.alloc(32),
  });
  const r = gw.handleDatagram(cookie, wire.from, T0);
  t.match(r.events, [{ kind: 'dropped', reason: 'wrong-direction' }]);
  t.equal(r.send.length, 0);
});

t.test('a datagram that is not GSRA gets no answer', async (t) => {
  const { gw, wire } = up();
  const r = gw.handleDatagram(Buffer.from('hello world'), wire.from, T0);
  t.equal(r.send.length, 0);
  t.match(r.events, [{ kind: 'dropped', reason: 'not-gsra' }]);
});

t.test('an agent ignores a forged unknown-session that does not echo its session id', async (t) => {
  const { agent, gw, wire } = up();
  const forged = gw.handleDatagram(
    sealMessage(encode(keepaliveOf(Buffer.alloc(8, 1))), Buffer.alloc(32)),
    wire.from,
    T0,
  );
  const a = agent.handleDatagram(forged.send[0]!.data, T0);
  t.equal(agent.state, 'up');
  t.match(a.events, [{ kind: 'dropped' }]);
});

t.test(
  'a forged unknown-session naming the live session (no token, or a wrong one) ends nothing: the agent asks the gateway with a KEEPALIVE',
  async (t) => {
    const { agent, gw, wire } = up();
    const id = Buffer.from(agent.session!, 'hex');
    const forgeries = [
      handshakeError(sessionRef(id), 'unknown-session', ''),
      handshakeError(sessionRef(id), 'unknown-session', '', { resetToken: Buffer.alloc(16, 0x42) }),
    ];
    let keepalives = 0;
    for (let i = 0; i < 50; i++) {
      const a = agent.handleDatagram(forgeries[i % 2]!, T0 + 10 + i);
      t.match(a.events, [{ kind: 'dropped', reason: 'unauthenticated-teardown' }]);
      keepalives += a.send.filter((o) => decode(o.data).type === 'KEEPALIVE').length;
      if (i === 0) wire.run(a, T0 + 10); // the gateway answers: the probe settles
    }
    t.equal(agent.state, 'up', 'still up');
    t.equal(agent.session, id.toString('hex'), 'the same session');
    t.equal(keepalives, 2, 'one probe answered, then one in flight: never a KEEPALIVE per forgery');
    t.equal(gw.stats().sessions, 1, 'no abandoned session piles up at the gateway');
  },
);

t.test(
  'the reset token is HMAC(resetKey, "gsra/1 reset" ‖ sessionId) and only its gateway knows it',
  async (t) => {
    const { agent, gw } = up();
    const id = Buffer.from(agent.session!, 'hex');
    const r = gw.handleDatagram(
      sealMessage(encode(keepaliveOf(Buffer.alloc(8, 9))), Buffer.alloc(32)),
      { addr: '198.51.100.7', port: 9 },
      T0,
    );
    const m = decode(r.send[0]!.data);
    t.match(m, { type: 'HANDSHAKE_ERROR', reason: 'unknown-session', authKind: 2 });
    if (m.type === 'HANDSHAKE_ERROR')
      t.same(m.tag, resetToken(RESET_KEY, Buffer.alloc(8, 9)), 'the token of the session named');
    t.notSame(resetToken(RESET_KEY, id), resetToken(Buffer.alloc(32, 1), id), 'another key, another token');
    t.equal(r.send[0]!.unproven, true, 'sent as an answer to an unproven source');
  },
);

t.test('a COOKIE with an invalid gateway key is ignored; HELLO keeps being retransmitted', async (t) => {
  const { agent } = setup();
  const hello = decode(agent.login(T0).send[0]!.data);
  if (hello.type !== 'HELLO') throw new Error('no HELLO');
  const bad = encode({
    type: 'COOKIE',
    enNonce: hello.enNonce,
    cookieTime: Math.floor(T0 / 1000),
    cookie: Buffer.alloc(16, 1),
    gwPub: Buffer.alloc(32), // small-order point
  });
  t.match(agent.handleDatagram(bad, T0).events, [{ kind: 'dropped', reason: 'bad-gateway-key' }]);
  t.equal(agent.state, 'hello');
  t.equal(agent.poll(T0 + 250).send.length, 1, 'HELLO retransmitted');
});

t.test('a throwing lookupUser becomes an internal refusal at login, never a crash', async (t) => {
  const { dir, gw } = up();
  dir.lookupUser = () => {
    throw new Error('ldap down');
  };
  const s2 = new Wire(aliceAgent(), gw, { addr: '203.0.113.3', port: 1 });
  login(s2);
  t.match(
    s2.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'internal', authenticated: false },
  );
  t.ok(s2.gatewayEvents.some((e) => e.kind === 'policy-error' && e.detail === 'ldap down'));
});

t.test('state machines never throw on garbage, mutated or misdirected datagrams', async (t) => {
  const { agent, gw, wire } = reserved();
  const rnd = fuzzRandom(t, 'state machine fuzz');
  const seen = [...wire.toGateway, ...wire.toAgent];
  let answers = 0;
  t.doesNotThrow(() => {
    for (let i = 0; i < 20_000; i++) {
      const base = seen[i % seen.length]!;
      const buf = Buffer.from(base);
      if (i % 3 === 0) buf[rnd.int(buf.length)]! ^= 1 + rnd.int(255);
      else if (i % 3 === 1) buf.fill(rnd.int(256), 4 + rnd.int(buf.length - 4));
      const now = T0 + i;
      const g = gw.handleDatagram(
        buf,
        { addr: i % 2 ? '203.0.113.2' : '2001:db8::7', port: 61000 },
        now,
        i % 5 ? 4430 : 40000,
      );
      const a = agent.handleDatagram(buf, now);
      answers += g.send.length + a.send.length;
    }
  }, 'no exception in 40k calls');
  t.ok(answers > 0, `the peer's forgeries were answered (${answers} answers), the rest dropped`);
  t.equal(gw.stats().sessions, 1, 'still exactly one session');
  t.equal(agent.state, 'up');
});
