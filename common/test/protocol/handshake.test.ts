import t, { type Test } from 'tap';
import {
  decode,
  deriveFlowKeys,
  encode,
  GatewayControl,
  PROTOCOL_VERSION,
  type Message,
} from '../../src/protocol/index.ts';
import { MAX_AUTH_PER_COOKIE } from '../../src/protocol/gateway-handshake.ts';
import { aliceAgent, BOB_SECRET, GK1, GK2, T0, Wire, login, setup } from './harness.ts';

type Tap = Test;

t.test('handshake end to end: AUTH_OK, session on both sides, decision logged', async (t) => {
  const { gw, agent, wire } = setup();
  login(wire);
  t.equal(agent.state, 'up');
  t.ok(wire.agentEvents.some((e) => e.kind === 'session-up'));
  t.equal(gw.stats().sessions, 1);
  const d = wire.gatewayEvents.find((e) => e.kind === 'decision');
  t.match(d, {
    step: 'auth',
    user: 'alice',
    group: 'sales',
    en: '203.0.113.2:61000',
    decision: 'allow',
    reason: 'ok',
  });
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'session-up'),
    { userDn: 'uid=alice,ou=people,dc=corp', gkVersion: 1 },
  );
  t.equal(wire.toGateway.length, 2, 'HELLO + AUTH');
  t.equal(wire.toAgent.length, 2, 'COOKIE + AUTH_OK');
});

function refusedWith(t: Tap, opts: Parameters<typeof setup>[0], reason: string, authenticated: boolean) {
  const { gw, agent, wire } = setup(opts);
  login(wire);
  t.equal(agent.state, 'failed', `${reason}: agent failed`);
  t.match(
    wire.agentEvents.find((e) => e.kind === 'refused'),
    { reason, authenticated },
    `${reason}: refused event`,
  );
  t.match(
    wire.gatewayEvents.find((e) => e.kind === 'decision'),
    { decision: 'deny', reason },
    `${reason}: decision`,
  );
  t.same(gw.stats().sessions, 0, `${reason}: no session`);
}

const refusals: Array<[string, Parameters<typeof setup>[0], string, boolean]> = [
  ['a wrong user secret', { secret: Buffer.alloc(32, 0x99) }, 'bad-proof', false],
  ['an unknown user', { user: 'mallory' }, 'unknown-user', false],
  ['a group the user is not in', { user: 'bob', secret: BOB_SECRET, group: 'sales' }, 'not-in-group', true],
  ['a wrong group key', { gk: { version: 1, key: GK2 } }, 'bad-proof', true],
  [
    'a group key version newer than the gateway knows',
    { gk: { version: 7, key: GK1 } },
    'unknown-key-version',
    true,
  ],
];
for (const [what, opts, reason, authenticated] of refusals)
  t.test(`${what} is refused with ${reason}, a reason the agent can show`, async (t) => {
    refusedWith(t, opts, reason, authenticated);
  });

t.test('a user in no GSRA group is refused revoked-user (authenticated refusal)', async (t) => {
  const { dir, agent, wire } = setup();
  dir.users.get('alice')!.refusal = { reason: 'revoked-user', text: 'alice is in no GSRA group' };
  login(wire);
  t.equal(agent.state, 'failed');
  t.match(
    wire.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'revoked-user', authenticated: true },
  );
});

/** alice in sales with GK version 2 current and version 1 valid until T0 + 1 h. */
function rotating(gk = { version: 1, key: GK1 }) {
  const s = setup({ gk });
  s.dir.users.get('alice')!.groups = [
    {
      name: 'sales',
      keys: [
        { version: 2, key: GK2 },
        { version: 1, key: GK1, notAfter: T0 + 3600_000 },
      ],
    },
  ];
  return s;
}

t.test('key rotation: the previous group key version is accepted until its notAfter', async (t) => {
  const a = rotating();
  login(a.wire, T0 + 1000);
  t.equal(a.agent.state, 'up', 'old version inside the grace period');
});

t.test('key rotation: after notAfter the previous version is refused (stale-key-version)', async (t) => {
  const b = rotating();
  login(b.wire, T0 + 3600_001);
  t.equal(b.agent.state, 'failed');
  t.match(
    b.wire.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'stale-key-version' },
  );
});

t.test('key rotation: a retired version is refused (stale-key-version)', async (t) => {
  const c = rotating();
  c.dir.users.get('alice')!.groups[0]!.keys = [{ version: 2, key: GK2 }];
  login(c.wire, T0);
  t.match(
    c.wire.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'stale-key-version' },
    'retired version',
  );
});

t.test('key rotation: the new version is accepted', async (t) => {
  const d = rotating({ version: 2, key: GK2 });
  login(d.wire, T0);
  t.equal(d.agent.state, 'up', 'new version accepted');
});

t.test('key rotation: a session on the old version gets no new reservation after notAfter', async (t) => {
  const a = rotating();
  login(a.wire, T0 + 1000);
  a.wire.run(a.agent.reserve('intra1.corp.example', 6, T0 + 3600_002), T0 + 3600_002);
  t.match(
    a.wire.agentEvents.find((e) => e.kind === 'session-down'),
    { reason: 'stale-key-version' },
  );
});

t.test('cookie bound to the address: AUTH from another address → bad-cookie, no state', async (t) => {
  const { gw, agent, wire } = setup();
  wire.lose = (dir, data) => dir === 'up' && data[3] === 0x03; // capture AUTH, do not deliver it
  login(wire);
  const auth = wire.toGateway.find((d) => d[3] === 0x03)!;
  const r = gw.handleDatagram(auth, { addr: '198.51.100.7', port: 61000 }, T0);
  t.match(decode(r.send[0]!.data), { type: 'HANDSHAKE_ERROR', reason: 'bad-cookie', authKind: 0 });
  const r2 = gw.handleDatagram(auth, { addr: '203.0.113.2', port: 61001 }, T0);
  t.match(decode(r2.send[0]!.data), { type: 'HANDSHAKE_ERROR', reason: 'bad-cookie' });
  t.same(gw.stats().sessions, 0);
  t.same(gw.stats().authCache, 0);
  t.equal(agent.state, 'auth');
});

t.test('expired cookie → cookie-expired, no state; the agent starts over and succeeds', async (t) => {
  const { gw, agent, wire } = setup();
  wire.lose = (dir, data) => dir === 'up' && data[3] === 0x03;
  login(wire);
  const auth = wire.toGateway.find((d) => d[3] === 0x03)!;
  const late = T0 + 180_000;
  const r = gw.handleDatagram(auth, wire.from, late);
  const err = decode(r.send[0]!.data);
  t.match(err, { type: 'HANDSHAKE_ERROR', reason: 'cookie-expired' });
  t.same(gw.stats().sessions, 0);
  wire.lose = () => false;
  // the agent, receiving cookie-expired, sends a fresh HELLO and completes
  wire.run(agent.handleDatagram(r.send[0]!.data, late), late);
  t.equal(agent.state, 'up');
});

t.test('duplicate AUTH gets the cached AUTH_OK; never a second session', async (t) => {
  const { gw, wire } = setup();
  login(wire);
  const auth = wire.toGateway.find((d) => d[3] === 0x03)!;
  const authOk = wire.toAgent.find((d) => d[3] === 0x04)!;
  const r = gw.handleDatagram(auth, wire.from, T0 + 500);
  t.ok(r.send[0]!.data.equals(authOk), 'same AUTH_OK bytes');
  t.equal(gw.stats().sessions, 1);
});

t.test('after its cookie expired, the same AUTH is refused (cookie-expired) without state', async (t) => {
  const { gw, wire } = setup();
  login(wire);
  const auth = wire.toGateway.find((d) => d[3] === 0x03)!;
  gw.poll(T0 + 200_000);
  const r2 = gw.handleDatagram(auth, wire.from, T0 + 200_000);
  t.match(decode(r2.send[0]!.data), { reason: 'cookie-expired' });
});

t.test('AUTH with a stale timestamp is refused (replay protection of the handshake)', async (t) => {
  const { gw } = setup();
  const now = T0;
  const c = gw.handleDatagram(
    encode({ type: 'HELLO', enNonce: Buffer.alloc(16, 1) }),
    { addr: '203.0.113.9', port: 5 },
    now,
  );
  const cookie = decode(c.send[0]!.data);
  if (cookie.type !== 'COOKIE') throw new Error('no cookie');
  const auth: Message = {
    type: 'AUTH',
    enNonce: cookie.enNonce,
    cookieTime: cookie.cookieTime,
    cookie: cookie.cookie,
    timestamp: now - 61_000,
    enPub: Buffer.alloc(32, 9),
    gkVersion: 1,
    user: 'alice',
    group: 'sales',
    userProof: Buffer.alloc(16),
    groupProof: Buffer.alloc(16),
  };
  const r = gw.handleDatagram(encode(auth), { addr: '203.0.113.9', port: 5 }, now);
  t.match(decode(r.send[0]!.data), { reason: 'stale-timestamp' });
  t.same(gw.stats().sessions, 0);
});

t.test('flood of 10k spoofed HELLO and AUTH: no state, nothing reserved, no amplification', async (t) => {
  const { gw, dir } = setup();
  let bytesIn = 0;
  let bytesOut = 0;
  for (let i = 0; i < 10_000; i++) {
    const from = { addr: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 1024 + i };
    const hello = encode({ type: 'HELLO', enNonce: Buffer.alloc(16, i & 255) });
    const r = gw.handleDatagram(hello, from, T0 + i);
    bytesIn += hello.length;
    for (const s of r.send) bytesOut += s.data.length;
    const cookie = decode(r.send[0]!.data);
    if (cookie.type !== 'COOKIE') throw new Error('no cookie');
    const auth = encode({
      type: 'AUTH',
      enNonce: cookie.enNonce,
      cookieTime: cookie.cookieTime,
      cookie: i % 2 ? cookie.cookie : Buffer.alloc(16, 7), // half with a forged cookie
      timestamp: T0 + i,
      enPub: Buffer.alloc(32, 9),
      gkVersion: 1,
      user: 'alice',
      group: 'sales',
      userProof: Buffer.alloc(16, 1),
      groupProof: Buffer.alloc(16, 2),
    });
    const spoofFrom = i % 2 ? from : { addr: '192.0.2.1', port: 9 };
    const r2 = gw.handleDatagram(auth, spoofFrom, T0 + i);
    bytesIn += auth.length;
    for (const s of r2.send) bytesOut += s.data.length;
  }
  // Only the AUTHs whose cookie verified (senders that receive what the gateway sends) are
  // counted against their cookie's reuse bound, until the cookie expires.
  t.same(gw.stats(), { sessions: 0, reservations: 0, authCache: 0, ephemeralKeys: 1, countedCookies: 5000 });
  gw.poll(T0 + 10_000 + 120_000);
  t.equal(gw.stats().countedCookies, 0, 'the counts end with their cookies');
  t.equal(dir.reserveCalls.length, 0, 'reservePorts never called');
  t.ok(bytesOut < bytesIn, `responses (${bytesOut} B) smaller than requests (${bytesIn} B)`);
});

t.test(
  'unsupported version → unsupported-version error in the layout every version reads, no state',
  async (t) => {
    const { gw } = setup();
    for (const v of [1, 9]) {
      const hello = encode({ type: 'HELLO', enNonce: Buffer.alloc(16, 1) });
      hello[2] = v;
      const r = gw.handleDatagram(hello, { addr: '203.0.113.5', port: 1 }, T0);
      const reply = r.send[0]!.data;
      t.equal(reply[2], 1, `answered as version 1 (to a version-${v} HELLO)`);
      const asCurrent = Buffer.from(reply);
      asCurrent[2] = PROTOCOL_VERSION;
      t.match(decode(asCurrent), { type: 'HANDSHAKE_ERROR', reason: 'unsupported-version', text: '2' });
      t.equal(r.send[0]!.unproven, true, 'an answer to an unproven source');
    }
    t.same(gw.stats().sessions, 0);
  },
);

t.test(
  'one cookie carries at most MAX_AUTH_PER_COOKIE AUTHs past the cookie check; then replay, before any X25519 or directory question',
  async (t) => {
    const { gw, dir } = setup();
    const from = { addr: '198.51.100.20', port: 4000 };
    const r = gw.handleDatagram(encode({ type: 'HELLO', enNonce: Buffer.alloc(16, 3) }), from, T0);
    const cookie = decode(r.send[0]!.data);
    if (cookie.type !== 'COOKIE') throw new Error('no cookie');
    let lookups = 0;
    const lookup = dir.lookupUser.bind(dir);
    dir.lookupUser = (id) => (lookups++, lookup(id));
    const reasons: string[] = [];
    for (let i = 0; i < 50; i++) {
      const auth = encode({
        type: 'AUTH',
        enNonce: cookie.enNonce,
        cookieTime: cookie.cookieTime,
        cookie: cookie.cookie,
        timestamp: T0,
        enPub: Buffer.alloc(32, 9),
        gkVersion: 1,
        user: `guess${i}`,
        group: 'sales',
        userProof: Buffer.alloc(16, 1),
        groupProof: Buffer.alloc(16, 2),
      });
      const a = gw.handleDatagram(auth, from, T0 + i);
      const m = decode(a.send[0]!.data);
      if (m.type === 'HANDSHAKE_ERROR') reasons.push(m.reason);
    }
    t.equal(
      lookups,
      MAX_AUTH_PER_COOKIE,
      `the directory snapshot was asked ${MAX_AUTH_PER_COOKIE} times, not 50`,
    );
    t.same(
      reasons.slice(MAX_AUTH_PER_COOKIE),
      Array(50 - MAX_AUTH_PER_COOKIE).fill('replay'),
      'the rest: replay',
    );
    t.equal(gw.stats().countedCookies, 1);
  },
);

t.test('ephemeral gateway keys are dropped after two epochs (forward secrecy)', async (t) => {
  const { gw, wire } = setup();
  login(wire);
  t.equal(gw.stats().ephemeralKeys, 1);
  gw.poll(T0 + 125_000);
  t.equal(gw.stats().ephemeralKeys, 0);
});

t.test('deriveFlowKeys is deterministic and distinct per proto/t/serial/direction', async (t) => {
  const ss = Buffer.alloc(32, 3);
  const a = deriveFlowKeys(ss, 6, 40000, 0);
  const b = deriveFlowKeys(ss, 6, 40000, 0);
  t.same(a, b);
  t.equal(a.enToGw.encKey.length, 16);
  t.equal(a.enToGw.macKey.length, 32);
  t.equal(a.enToGw.ivSalt.length, 8);
  t.notSame(a.enToGw.encKey, a.gwToEn.encKey);
  t.notSame(a.enToGw.encKey, deriveFlowKeys(ss, 6, 40000, 1).enToGw.encKey);
  t.notSame(a.enToGw.encKey, deriveFlowKeys(ss, 17, 40000, 0).enToGw.encKey);
  t.notSame(a.enToGw.encKey, deriveFlowKeys(ss, 6, 40001, 0).enToGw.encKey);
  // known-answer vector (also in docs/protocol.md) so a second implementation can check itself
  t.equal(Buffer.concat([a.enToGw.encKey, a.enToGw.macKey, a.enToGw.ivSalt]).toString('hex'), KAT_FLOW);
});

t.test('the keys of a reserved port are equal on the agent and the gateway', async (t) => {
  const { gw, agent, wire } = setup();
  login(wire);
  wire.run(agent.reserve('intra1.corp.example', 6, T0), T0);
  type Reserved = Extract<(typeof wire.agentEvents)[number], { kind: 'reserved' }>;
  const reserved = wire.agentEvents.find((e): e is Reserved => e.kind === 'reserved');
  t.ok(reserved);
  for (const p of reserved!.ports)
    t.same(p.keys, gw.reservations.get(6, p.t)!.keys, `t=${p.t}: same keys both sides`);
});

// computed independently (Python hmac/hashlib HKDF) from the formula in docs/protocol.md §7
const KAT_FLOW =
  '1ec85f97e857dbadc245f0397c6233b7d058bb5a424c0e2dbeabcf2ec4eb5b6018c244b01acfc3a2d319f966346e062b8e1e0f8223edf67c';

t.test('sessions per user are limited (rate-limited, authenticated refusal)', async (t) => {
  const { dir } = setup();
  const gw = new GatewayControl({ policy: dir, maxSessionsPerUser: 2 });
  const states: string[] = [];
  let last: Wire | undefined;
  for (let i = 0; i < 3; i++) {
    const agent = aliceAgent();
    last = new Wire(agent, gw, { addr: '203.0.113.2', port: 61000 + i });
    login(last);
    states.push(agent.state);
  }
  t.same(states, ['up', 'up', 'failed']);
  t.match(
    last!.agentEvents.find((e) => e.kind === 'refused'),
    { reason: 'rate-limited', authenticated: true },
  );
});

/** An agent waiting for the answer to its AUTH (the AUTH is captured, not delivered). */
function waitingForAuth() {
  const { agent, wire } = setup();
  wire.lose = (dir, data) => dir === 'up' && data[3] === 0x03;
  login(wire);
  const auth = decode(wire.toGateway.find((d) => d[3] === 0x03)!);
  if (auth.type !== 'AUTH') throw new Error('no AUTH');
  return { agent, enNonce: auth.enNonce };
}

t.test('the agent ignores an unauthenticated refusal that must be authenticated', async (t) => {
  const { agent, enNonce } = waitingForAuth();
  const forged = encode({
    type: 'HANDSHAKE_ERROR',
    ref: enNonce,
    reason: 'not-in-group',
    text: 'forged',
    authKind: 0,
    tag: Buffer.alloc(16),
  });
  const r = agent.handleDatagram(forged, T0);
  t.match(r.events, [{ kind: 'dropped', reason: 'unauthenticated-refusal' }]);
  t.equal(agent.state, 'auth', 'still waiting for the real answer');
});

t.test('the agent ignores a refusal whose tag does not verify', async (t) => {
  const { agent, enNonce } = waitingForAuth();
  const forged2 = encode({
    type: 'HANDSHAKE_ERROR',
    ref: enNonce,
    reason: 'not-in-group',
    text: 'x',
    authKind: 1,
    tag: Buffer.alloc(16, 1),
  });
  t.match(agent.handleDatagram(forged2, T0).events, [{ kind: 'dropped', reason: 'bad-refusal-tag' }]);
  t.equal(agent.state, 'auth', 'still waiting for the real answer');
});

t.test('the agent ignores a refusal that does not echo its nonce', async (t) => {
  const { agent } = waitingForAuth();
  const wrongRef = encode({
    type: 'HANDSHAKE_ERROR',
    ref: Buffer.alloc(16, 3),
    reason: 'unknown-user',
    text: 'x',
    authKind: 0,
    tag: Buffer.alloc(16),
  });
  t.match(agent.handleDatagram(wrongRef, T0).events, [{ kind: 'dropped', reason: 'unexpected-error' }]);
  t.equal(agent.state, 'auth', 'still waiting for the real answer');
});
