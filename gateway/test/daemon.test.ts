// The gateway daemon against a real slapd over TLS, spoken to by the agent's protocol state
// machine over real UDP on loopback: decisions, refusals with reasons, replay, spoofed floods,
// revocation, and the operator's endpoints. The directory is shared; every test runs its own
// gateway.
import t, { type Test } from 'tap';
import { createSocket, Socket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { protocol } from '@gsra/common';
import { startSlapd } from '../../ldap/src/fixture/index.ts';
import type { FlowCounts } from '../src/data-plane.ts';
import { main } from '../src/cli.ts';
import { run } from '../../test/lab/exec.ts';
import { gatewayFixture, RecordingDataPlane } from './gateway-fixture.ts';

const { encode, decode } = protocol;
const IN1 = 'intra1.corp.example';
const IN2 = 'intra2.corp.example';

const dir = await startSlapd();
t.teardown(() => dir.stop());
const { gateway } = gatewayFixture(dir);
const { alice, bob } = dir.users;

t.test('alice (sales) logs in and reserves ports for intra1: allowed, logged, counted', async (t) => {
  const { gw, lines, aliceUp } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  const ev = await a.waitFor((e) => e.kind === 'reserved' || e.kind === 'reserve-failed');
  t.equal(ev.kind, 'reserved');
  const ports = ev.kind === 'reserved' ? ev.ports : [];
  t.ok(ports.length >= 1, `${ports.length} ports reserved`);
  t.ok(
    ports.every((p) => p.t >= 40000 && p.t <= 40063),
    'from the configured range',
  );
  const line = lines.find((l) => l.message === 'access allowed' && l.step === 'reserve');
  t.match(line, { user: 'alice', group: 'sales', in: IN1, decision: 'allow', reason: 'ok' });
  t.match(String(line?.en), /^127\.0\.0\.1:\d+$/, 'the EN address and port are on the line');
  t.equal(gw.pool.inUse, ports.length);
  t.ok(
    gw.status().reservations.some((f) => f.user === 'alice' && f.in === IN1),
    'status lists the reservation',
  );
});

t.test('alice asking for intra2 (dev) is refused: not-in-group, with a log line', async (t) => {
  const { lines, aliceUp } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN2, 6, Date.now()));
  const ev = await a.waitFor((e) => e.kind === 'reserved' || e.kind === 'reserve-failed');
  t.match(ev, { kind: 'reserve-failed', reason: 'not-in-group' });
  t.ok(
    lines.some(
      (l) =>
        l.message === 'access refused' && l.user === 'alice' && l.in === IN2 && l.reason === 'not-in-group',
    ),
  );
});

t.test('a wrong user secret is refused (bad-proof) and makes no session', async (t) => {
  const { gw, login } = await gateway(t);
  const b = await login(bob, 'dev', dir.groups.dev.key, Buffer.alloc(32, 7));
  const ev = await b.waitFor((e) => e.kind === 'refused' || e.kind === 'session-up');
  t.match(ev, { kind: 'refused', reason: 'bad-proof' });
  t.equal(gw.control.stats().sessions, 0);
});

t.test('a group bob is not in is refused at login (not-in-group)', async (t) => {
  const { login } = await gateway(t);
  const b = await login(bob, 'sales', dir.groups.sales.key);
  const ev = await b.waitFor((e) => e.kind === 'refused' || e.kind === 'session-up');
  t.match(ev, { kind: 'refused', reason: 'not-in-group' });
});

t.test('a replayed RESERVE is answered from the cache and reserves nothing more', async (t) => {
  const { gw, lines, aliceUp } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN1, 17, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  const reserveMsg = a.sent[a.sent.length - 1]!;
  const inUse = gw.pool.inUse;
  const from = lines.length;
  a.sendRaw(reserveMsg);
  a.sendRaw(reserveMsg);
  // both copies come back as the cached RESERVED: the agent drops them as duplicates
  await a.waitForCount((e) => e.kind === 'dropped' && e.reason === 'duplicate', 2);
  t.equal(gw.pool.inUse, inUse, 'no new reservation');
  t.notOk(
    lines.slice(from).some((l) => l.message === 'access allowed'),
    'no second decision: the duplicate is answered from the response cache, never executed again',
  );
});

t.test('a tampered message (one bit flipped) is dropped: bad MAC', async (t) => {
  const { gw, lines, aliceUp, logged } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  const msg = Buffer.from(a.sent[a.sent.length - 1]!);
  msg[msg.length - 20]! ^= 1;
  const from = lines.length;
  const inUse = gw.pool.inUse;
  a.sendRaw(msg);
  // the gateway tells the session's own address why (ERROR bad-mac) and logs the drop
  t.match(await a.waitFor((e) => e.kind === 'gateway-error'), { reason: 'bad-mac' });
  t.ok(await logged((l) => l.message === 'control datagram dropped' && l.reason === 'bad-mac', from));
  t.equal(gw.pool.inUse, inUse);
});

t.test('10,000 spoofed HELLO and AUTH datagrams leave no state and reserve nothing', async (t) => {
  const { gw, gwAddr } = await gateway(t);
  const { sessions, authCache } = gw.control.stats();
  const inUse = gw.pool.inUse;
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => s.close());
  const hello = encode({ type: 'HELLO', enNonce: Buffer.alloc(16, 1) });
  for (let i = 0; i < 10_000; i++) {
    const auth = encode({
      type: 'AUTH',
      enNonce: Buffer.alloc(16, i & 255),
      cookieTime: Math.floor(Date.now() / 1000),
      cookie: Buffer.alloc(16, (i >> 8) & 255),
      timestamp: Date.now(),
      enPub: Buffer.alloc(32, 9),
      gkVersion: 1,
      user: 'alice',
      group: 'sales',
      userProof: Buffer.alloc(16),
      groupProof: Buffer.alloc(16),
    });
    s.send(i % 2 ? hello : auth, gwAddr.port, gwAddr.addr);
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  // The gateway handles its socket in order: once it answers a last HELLO, it has handled (or the
  // kernel has dropped) every datagram sent before it. That HELLO may be dropped too: resend it.
  const last = Buffer.alloc(16, 0xee);
  const answered = new Promise<void>((resolve, reject) => {
    const again = setInterval(
      () => s.send(encode({ type: 'HELLO', enNonce: last }), gwAddr.port, gwAddr.addr),
      200,
    );
    const give = setTimeout(
      () => (clearInterval(again), reject(new Error('the gateway never answered'))),
      20_000,
    );
    s.on('message', (m) => {
      const c = decode(m);
      if (c.type !== 'COOKIE' || !c.enNonce.equals(last)) return;
      clearInterval(again);
      clearTimeout(give);
      resolve();
    });
  });
  await answered;
  t.equal(gw.control.stats().sessions, sessions, 'no session');
  t.equal(gw.pool.inUse, inUse, 'no port');
  t.equal(gw.control.stats().authCache, authCache, 'nothing cached for forged AUTHs');
});

t.test('operators: /metrics counts decisions by reason', async (t) => {
  const { gw, aliceUp } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN2, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserve-failed');
  const ops = `${gw.opsAddress!.address}:${gw.opsAddress!.port}`;
  const metrics = await (await fetch(`http://${ops}/metrics`)).text();
  t.match(metrics, /gsra_gateway_decisions_total\{decision="deny",reason="not-in-group"\} [1-9]/);
});

t.test('operators: /healthz answers 200 while the directory is usable', async (t) => {
  const { gw } = await gateway(t);
  const health = await fetch(`http://${gw.opsAddress!.address}:${gw.opsAddress!.port}/healthz`);
  t.equal(health.status, 200);
});

t.test('operators: `gsra-gateway status` lists the policy state and the reservations', async (t) => {
  const { gw, aliceUp } = await gateway(t);
  const a = await aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  let out = '';
  const code = await main(['status', '--ops', `${gw.opsAddress!.address}:${gw.opsAddress!.port}`], {
    stdout: (s) => (out += s),
    stderr: (s) => (out += s),
  });
  t.equal(code, 0);
  t.match(out, /LDAP policy fresh/);
  t.match(out, /alice\s+sales\s+intra1\.corp\.example/, out);
});

t.test('a user removed from the group in LDAP gets no new flows after a reload', async (t) => {
  const { gw, lines, aliceUp } = await gateway(t);
  const holder = await aliceUp(); // a session holding reservations
  holder.apply(holder.agent.reserve(IN1, 6, Date.now()));
  await holder.waitFor((e) => e.kind === 'reserved');
  const a = await aliceUp(); // a second session of alice, holding nothing yet
  const ldapmodify = (change: string) =>
    run(['ldapmodify', '-H', dir.ldapsUrl, '-x', '-D', dir.rootDn, '-w', dir.rootPassword], {
      env: { ...process.env, LDAPTLS_CACERT: dir.caFile },
      input: `dn: ${dir.groups.sales.dn}\nchangetype: modify\n${change}`,
    });
  await ldapmodify(`add: member\nmember: ${dir.users.carol.dn}\n-\ndelete: member\nmember: ${alice.dn}\n`);
  // the directory is shared with the other tests: alice goes back into sales afterwards
  t.teardown(() =>
    ldapmodify(`add: member\nmember: ${alice.dn}\n-\ndelete: member\nmember: ${dir.users.carol.dn}\n`),
  );
  t.ok(gw.pool.countUser('alice') > 0, 'alice holds reservations before');
  await gw.reload();
  t.equal(gw.pool.countUser('alice'), 0, 'the reload ended every reservation of alice');
  t.notOk(
    gw.status().reservations.some((f) => f.user === 'alice'),
    'status lists none of hers',
  );
  t.ok(
    lines.some((l) => l.message === 'access refused' && l.user === 'alice' && l.reason === 'revoked-user'),
  );
  t.match(
    await holder.waitFor((e) => e.kind === 'gateway-error'),
    { reason: 'revoked-user' },
    'the session that held them is told why',
  );
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  const ev = await a.waitFor((e) => e.kind === 'reserve-failed' || e.kind === 'reserved', 3000);
  t.match(ev, { kind: 'reserve-failed', reason: 'revoked-user' });
});

t.test('with the directory down, a reload fails loudly and the last snapshot keeps serving', async (t) => {
  const { gw, lines } = await gateway(t);
  await dir.kill();
  t.teardown(() => dir.start());
  const from = lines.length;
  await gw.reload();
  t.ok(
    lines
      .slice(from)
      .some((l) => l.message === 'reload failed: directory unavailable' && l.level === 'error'),
  );
  t.same(gw.health(), [], 'a fresh snapshot is still usable (it goes stale after 5 refresh intervals)');
});

/** alice with 4 TCP ports for intra1, on a gateway whose data plane records what it gets. */
async function withDataPlane(t: Test) {
  const dp = new RecordingDataPlane();
  const g = await gateway(t, dp);
  const a = await g.aliceUp();
  a.apply(a.agent.reserve(IN1, 6, Date.now()));
  await a.waitFor((e) => e.kind === 'reserved');
  return { ...g, dp, a };
}

t.test('the data plane receives each reservation row itself, with the PIN from the directory', async (t) => {
  const { gw, dp } = await withDataPlane(t);
  t.equal(dp.added.length, 4);
  for (const r of dp.added) {
    t.equal(r, gw.control.reservations.get(r.proto, r.t), `row ${r.t}: the table's own row, not a copy`);
    t.match(r, { proto: 6, user: 'alice', inName: IN1, pin: '10.0.0.11' });
  }
});

t.test('a released reservation is taken back from the data plane', async (t) => {
  const { dp, a } = await withDataPlane(t);
  const r = dp.added[0]!;
  a.apply(a.agent.release(6, r.t, Date.now()));
  await a.waitFor((e) => e.kind === 'released');
  t.same(dp.removed, [r]);
});

t.test('the engine binding a row in-band: the row is mapped and the agent gets BOUND', async (t) => {
  const { dp, a } = await withDataPlane(t);
  const r = dp.added[0]!;
  dp.emit({ kind: 'bound', id: r.id, proto: 6, t: r.t, ghr: '127.0.0.1', m: 33333, d: 80 });
  t.match(await a.waitFor((e) => e.kind === 'bound'), { t: r.t, m: 33333, d: 80 });
  t.match(r, { binding: { ghr: '127.0.0.1', m: 33333 }, mapping: { d: 80 } });
});

t.test('an engine event about a reservation that has ended is not taken for today’s row', async (t) => {
  const { gw, dp, lines } = await withDataPlane(t);
  const r = dp.added[0]!;
  dp.emit({ kind: 'bound', id: r.id + 1000, proto: 6, t: r.t, ghr: '127.0.0.1', m: 1, d: 80 });
  t.equal(r.binding, undefined, 'a stale id binds nothing');
  const from = lines.length;
  dp.emit({ kind: 'flow-expired', id: r.id + 1000, proto: 6, t: r.t, reason: 'closing' });
  t.equal(gw.control.reservations.get(6, r.t), r, 'a stale expiry ends nothing');
  dp.emit({ kind: 'flow-expired', id: r.id, proto: 6, t: r.t, reason: 'closing' });
  t.same(
    lines
      .slice(from)
      .filter((l) => l.message === 'flow expired')
      .map((l) => l.t),
    [r.t],
    'only the expiry of the current row is logged',
  );
  t.equal(gw.control.reservations.get(6, r.t), undefined, 'the current row ends with its flow');
  t.ok(dp.removed.includes(r), 'and leaves the data plane');
  t.notOk(gw.pool.isTaken(r.t), 'its port is back in the pool');
});

t.test('gsra-gateway check-config reports problems as path: expected X, got Y', async (t) => {
  const tmpc = mkdtempSync(join(tmpdir(), 'gsra-gwc-'));
  writeFileSync(join(tmpc, 'bad.json'), JSON.stringify({ publicAddress: 'x', privateAddress: '10.0.0.1' }));
  let err = '';
  const code = await main(['check-config', '--config', join(tmpc, 'bad.json')], {
    stdout: () => {},
    stderr: (s) => (err += s),
  });
  t.equal(code, 1);
  t.match(err, /publicAddress: expected ipv4, got "x"/);
  t.match(err, /ldap: expected a value, got nothing/);
});

// ---------------------------------------------------------------------------------------------
// The per-flow audit and the operator's view (docs/gateway.md "Per-flow audit", "Status page")

/** Counts as the engine would report them: `toEn` payload bytes to the PC, 20 bytes to IN. */
const counts = (close: FlowCounts['close'], toEn: number): FlowCounts => ({
  state: close === 'none' ? 'established' : 'closing',
  close,
  toIn: { packets: 3, bytes: 3 * 52 + 20, payload: 20 },
  toEn: { packets: 2, bytes: 2 * 52 + toEn, payload: toEn },
  verifyFailed: 0,
});

/** alice's first row bound in-band from 127.0.0.1:33333 to d = 80, with the engine's counts set. */
async function withFlow(t: Test, c: FlowCounts) {
  const g = await withDataPlane(t);
  const r = g.dp.added[0]!;
  g.dp.counts.set(r.id, c);
  g.dp.emit({ kind: 'bound', id: r.id, proto: 6, t: r.t, ghr: '127.0.0.1', m: 33333, d: 80 });
  await g.a.waitFor((e) => e.kind === 'bound');
  return { ...g, r };
}

t.test('a flow released after its FIN gets one audit line: who, where, what moved, why', async (t) => {
  const { a, r, logged } = await withFlow(t, counts('fin', 5000));
  a.apply(a.agent.release(6, r.t, Date.now()));
  const line = await logged((l) => l.message === 'flow ended');
  t.match(line, {
    level: 'info',
    user: 'alice',
    group: 'sales',
    in: IN1,
    pin: '10.0.0.11',
    d: 80,
    proto: 'tcp',
    t: r.t,
    ghr: '127.0.0.1:33333',
    en: /^127\.0\.0\.1:\d+$/,
    packetsToIn: 3,
    payloadToIn: 20,
    bytesToIn: 176,
    packetsToEn: 2,
    payloadToEn: 5000,
    bytesToEn: 5104,
    verifyFailed: 0,
    reason: 'fin',
  });
  t.ok(Date.parse(String(line.start)) <= Date.parse(String(line.end)), 'start, then end (ISO 8601)');
  t.equal(typeof line.durationMs, 'number');
});

t.test('a flow the engine timed out is audited from its event, once', async (t) => {
  const { dp, a, r, lines, logged } = await withFlow(t, counts('none', 1));
  dp.emit({
    kind: 'flow-expired',
    id: r.id,
    proto: 6,
    t: r.t,
    reason: 'established',
    counts: counts('none', 777),
  });
  t.match(await logged((l) => l.message === 'flow ended'), { reason: 'idle', payloadToEn: 777 });
  a.apply(a.agent.release(6, r.t, Date.now()));
  await a.waitFor((e) => e.kind === 'released');
  t.equal(
    lines.filter((l) => l.message === 'flow ended').length,
    1,
    'the row’s own end writes no second line',
  );
});

t.test('a flow whose session ends is audited as session-down; unused ports get no line', async (t) => {
  const { a, lines, logged } = await withFlow(t, counts('none', 10));
  a.apply(a.agent.logout(Date.now()));
  t.match(await logged((l) => l.message === 'flow ended'), { reason: 'session-down', payloadToEn: 10 });
  await logged((l) => l.message === 'session down');
  t.equal(lines.filter((l) => l.message === 'flow ended').length, 1, 'only the bound row had a flow');
});

t.test('status: the live flow with its counts, alice’s session, and the latest refusal', async (t) => {
  const { gw, a, r } = await withFlow(t, counts('none', 4321));
  a.apply(a.agent.reserve(IN2, 6, Date.now())); // refused: not-in-group
  await a.waitFor((e) => e.kind === 'reserve-failed');
  const s = gw.status();
  t.match(s.flows, [
    { user: 'alice', in: IN1, t: r.t, ghr: '127.0.0.1:33333', payloadToEn: 4321, state: 'established' },
  ]);
  t.match(s.sessions, [{ user: 'alice', group: 'sales', reservations: 4, flows: 1 }]);
  t.match(s.refusals[0], { step: 'reserve', user: 'alice', in: IN2, reason: 'not-in-group' });
  t.match(s, { health: { ok: true }, policy: { usable: true }, engine: { running: true } });
  const json = JSON.stringify(s);
  t.notMatch(json, /[0-9a-f]{16}/i, 'no key, secret or whole session id (as hex)');
  t.notOk(json.includes(alice.secret.toString('base64')), 'not alice’s secret');
  let out = '';
  const ops = `${gw.opsAddress!.address}:${gw.opsAddress!.port}`;
  t.equal(
    await main(['status', '--flows', '--ops', ops], { stdout: (x) => (out += x), stderr: (x) => (out += x) }),
    0,
  );
  t.match(
    out,
    new RegExp(
      `alice\\s+sales\\s+${IN1.replace(/\./g, '\\.')}\\s+10\\.0\\.0\\.11:80\\s+tcp\\s+127\\.0\\.0\\.1:33333\\s+20\\s+4321`,
    ),
    out,
  );
});

t.test('the ops endpoint serves the status page, and counts control messages by type', async (t) => {
  const { gw } = await withFlow(t, counts('none', 1));
  const base = `http://${gw.opsAddress!.address}:${gw.opsAddress!.port}`;
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  t.match(await page.text(), /<script src="status-page\/status\.js"/);
  t.equal((await fetch(`${base}/status-page/status.js`)).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /gsra_gateway_control_messages_total\{type="AUTH"\} 1/);
  t.match(metrics, /gsra_gateway_control_messages_total\{type="RESERVE"\} 1/);
});

t.test(
  'a reserved port is in the engine before RESERVED leaves (the agent may use it at once)',
  async (t) => {
    const dp = new RecordingDataPlane();
    const g = await gateway(t, dp);
    const a = await g.aliceUp();
    // every datagram the gateway sends, with the rows the engine had at that moment
    const seen: Array<{ type: number; rows: number }> = [];
    const send = Socket.prototype.send;
    t.teardown(() => void (Socket.prototype.send = send));
    Socket.prototype.send = function (this: Socket, ...args: Parameters<Socket['send']>) {
      const m = args[0];
      if (Buffer.isBuffer(m)) seen.push({ type: m[3]!, rows: dp.added.length });
      return send.apply(this, args);
    } as Socket['send'];
    a.apply(a.agent.reserve(IN1, 6, Date.now()));
    await a.waitFor((e) => e.kind === 'reserved');
    const reserved = seen.filter((s) => s.type === 0x11);
    t.equal(reserved.length, 1, 'one RESERVED');
    t.equal(reserved[0]!.rows, 4, 'its 4 ports were in the engine when it left');
  },
);
