// The agent daemon against a gateway that restarts: a real AgentDaemon and a real GatewayControl
// talking UDP over loopback; the packet path is a recording fake (the engine has its own tests,
// the lab runs the whole thing).
import t, { type Test } from 'tap';
import { buildQuery, buildResponse, parseDns } from '@gsra/common';
import { IN1, setup, until } from './agent-fixture.ts';

t.test('a held first packet leaves on a reserved port once the reservation arrives', async (t) => {
  const { gw, dp, syn } = await setup(t);
  dp.emit({ kind: 'held', ...syn(50000) });
  await until('the VAT entry', () => dp.added.length === 1);
  t.match(dp.added[0], { proto: 6, s: 50000, d: 80, ggr: '127.0.0.1' });
  t.ok(dp.added[0]!.t >= 40000 && dp.added[0]!.t < 41000, `t=${dp.added[0]!.t} is from the gateway's pool`);
  t.equal(gw.sessionsUp, 1);
  t.same(dp.failed, [], 'nothing failed');
});

/** A flow on the first session, then a gateway that lost every session, and the agent up again. */
async function restarted(t: Test) {
  const s = await setup(t);
  s.dp.emit({ kind: 'held', ...s.syn(50001) });
  await until('the first flow', () => s.dp.added.length === 1);
  const first = s.dp.added[0]!;
  s.gw.restart(); // the next KEEPALIVE meets a gateway that knows no session: unknown-session
  await until('a session on the restarted gateway', () => s.gw.sessionsUp === 2);
  await until('the agent up again', () => s.agent.status().groups[0]!.session === 'up');
  return { ...s, first };
}

t.test(
  'a restarted gateway: the dead session’s flows are removed from the engine, with the reason',
  async (t) => {
    const { dp, lines, first } = await restarted(t);
    t.same(dp.removed, [first.id], 'the old session’s flow was removed from the engine');
    t.ok(
      lines.some(
        (l) => l.message === 'flow ended' && l.state === 'session-down' && l.reason === 'unknown-session',
      ),
      'and the agent logged why',
    );
  },
);

t.test('a restarted gateway: the next packet of the application leaves on the new session', async (t) => {
  const { dp, syn, first } = await restarted(t);
  // The application retransmits its SYN: with the flow gone the engine holds it again.
  dp.emit({ kind: 'held', ...syn(50001) });
  await until('the new flow', () => dp.added.length === 2);
  t.not(dp.added[1]!.t, first.t, 'on a port of the new session');
});

t.test('a restarted gateway: the agent makes exactly one new session', async (t) => {
  const { gw } = await restarted(t);
  // Two keepalives (1 s apart) take longer than the re-login backoff (1 s): a stray second
  // login would have happened by then.
  const k = gw.keepalives;
  await until('two more keepalives', () => gw.keepalives >= k + 2);
  t.equal(gw.sessionsUp, 2, 'exactly one new session, not one per path that noticed the loss');
  t.equal(gw.control.stats().sessions, 1, 'the gateway holds one session for alice');
});

t.test(
  'the directory unreachable from the gateway: the connection fails at once, log and status say why',
  async (t) => {
    const { gw, dp, agent, lines, syn } = await setup(t);
    const text =
      'the gateway has not been able to read the office directory (LDAP) for 3 min; help desk: check the LDAP server and the gateway link to it';
    gw.dir.lookupUser = () => ({ refused: 'directory-unavailable', text });
    dp.emit({ kind: 'held', ...syn(50010) });
    await until('the refusal', () => dp.failed.length === 1);
    const words = `${IN1} unavailable: ${text}`;
    t.ok(
      lines.some((l) => l.message === words && l.reason === 'directory-unavailable'),
      'one log line in words a help desk can act on',
    );
    t.notOk(lines.some((l) => String(l.message).includes('refused: internal')));
    const st = agent.status();
    t.equal(st.groups[0]!.error, words, 'gsra-agent status shows it');
    t.equal(st.groups[0]!.session, 'up', 'the session itself stays up');
  },
);

t.test('an account disabled in the directory: refused, the session ends, status says why', async (t) => {
  const { gw, dp, agent, lines, syn } = await setup(t);
  gw.dir.users.get('alice')!.refusal = {
    reason: 'account-disabled',
    text: 'alice: the account is disabled in Active Directory; ask IT',
  };
  dp.emit({ kind: 'held', ...syn(50011) });
  await until('the refusal', () => dp.failed.length === 1);
  await until('the session down', () => agent.status().groups[0]!.session === 'down');
  t.ok(
    lines.some(
      (l) => l.reason === 'account-disabled' && /disabled in Active Directory/.test(String(l.message)),
    ),
  );
  t.match(agent.status().groups[0]!.error, /the account is disabled in Active Directory; ask IT/);
  t.match(
    agent.status().groups[0]!.nextLogin,
    /^\d{4}-\d\d-\d\dT/,
    'a later login is scheduled, and status says when',
  );
});

t.test(
  'a login older than login.maxAgeHours: the agent ends its sessions and does not log in again',
  async (t) => {
    const maxAgeHours = 1;
    const { gw, agent, lines } = await setup(t, { maxAgeHours, fetchedAt: Date.now() - 3_600_000 + 800 });
    t.equal(agent.status().login.expired, null);
    await until('the login to expire', () => agent.status().login.expired !== null, 5000);
    const st = agent.status();
    t.match(
      st.login.expired,
      /the GSRA login of alice from .* UTC has expired \(logins last 1 h\): run gsra-agent login again/,
    );
    t.equal(st.groups[0]!.session, 'down');
    t.equal(st.groups[0]!.error, st.login.expired);
    t.ok(lines.some((l) => l.level === 'error' && l.reason === 'login-expired'));
    await until('the gateway to see the logout', () => gw.control.stats().sessions === 0, 3000);
    t.equal(agent.status().groups[0]!.nextLogin, null, 'no re-login is scheduled with the expired login');
    t.equal(gw.sessionsUp, 1, 'no new session with the expired login');
  },
);

t.test('an expired login does not start at all', async (t) => {
  await t.rejects(setup(t, { maxAgeHours: 1, fetchedAt: Date.now() - 2 * 3_600_000 }), /has expired/);
});

t.test(
  'a live flow the gateway cuts (directory change): removed at once, the next packet fails with the reason',
  async (t) => {
    const { gw, dp, agent, lines, syn } = await setup(t);
    dp.emit({ kind: 'held', ...syn(50020) });
    await until('the flow', () => dp.added.length === 1);
    const f = dp.added[0]!;
    // the engine would report the in-band binding of the flow's first packet
    gw.apply(gw.control.onInbandBinding({ proto: 6, t: f.t, ghr: '127.0.0.1', m: 50020, d: 80 }, Date.now()));
    gw.dir.users.get('alice')!.refusal = {
      reason: 'account-disabled',
      text: 'alice: the account is locked (password policy); ask IT',
    };
    gw.apply(gw.control.recheckAll(Date.now()));
    await until('the flow removed', () => dp.removed.includes(f.id));
    t.ok(
      lines.some(
        (l) =>
          l.reason === 'account-disabled' && l.in === IN1 && /the account is locked/.test(String(l.message)),
      ),
      'logged in words',
    );
    dp.emit({ kind: 'held', ...syn(50020) }); // the application retransmits
    await until('the retransmission failed', () => dp.failed.length === 1);
    t.match(agent.status().groups[0]!.error, /the account is locked \(password policy\); ask IT/);
  },
);

// ---------------------------------------------------------------------------------------------
// DNS: only answers to queries the agent saw leave

/** An IPv4/UDP packet around a DNS message (checksums are not the daemon's business). */
function udpPacket(src: string, sport: number, dst: string, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(28);
  h[0] = 0x45;
  h.writeUInt16BE(28 + payload.length, 2);
  h[8] = 64;
  h[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(h, 12);
  Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  h.writeUInt16BE(sport, 20);
  h.writeUInt16BE(dport, 22);
  h.writeUInt16BE(8 + payload.length, 24);
  return Buffer.concat([h, payload]);
}

t.test(
  'DNS: an answer to a query the agent saw gets a VIN and a RESERVE; forged ones are dropped and cost nothing',
  async (t) => {
    const { gw, dp, agent } = await setup(t);
    const PC = '192.168.1.10';
    const RESOLVER = dp.resolvers[0]!;
    const name = 'intra9.corp.example';
    gw.dir.hosts.set(name, 'sales');
    const answer = (id: number, q = name, from = RESOLVER, sport = 53, dport = 40123) =>
      udpPacket(
        from,
        sport,
        PC,
        dport,
        buildResponse(parseDns(buildQuery(id, q)), { a: ['127.0.0.1'], ttl: 300 }),
      );
    const reserves = () => gw.dir.reserveCalls.filter((r) => r.inName === name).length;
    dp.emit({ kind: 'dns-query', packet: udpPacket(PC, 40123, RESOLVER, 53, buildQuery(0x4242, name)) });
    const forged = [
      answer(0x4243), // another id
      answer(0x4242, 'intra1.corp.example'), // the right id, another question
      answer(0x4242, name, '203.0.113.66'), // not the resolver
      answer(0x4242, name, RESOLVER, 5353), // not from port 53
      answer(0x4242, name, RESOLVER, 53, 40124), // to another port
    ];
    forged.forEach((p, i) => dp.emit({ kind: 'dns-answer', id: 100 + i, packet: p }));
    t.same(
      dp.dns.map((v) => [v.id, v.packet]),
      forged.map((_, i) => [100 + i, null]),
      'every forged answer dropped',
    );
    t.equal(agent.vins.byHostName(name), undefined, 'no VIN handed out');
    t.same(agent.status().dns.refused, { 'no-such-query': 2, 'question-differs': 1, 'not-a-resolver': 2 });
    dp.emit({ kind: 'dns-answer', id: 200, packet: answer(0x4242) });
    const vin = agent.vins.byHostName(name)?.vin;
    t.ok(vin, `the real answer got a VIN (${vin})`);
    const real = dp.dns.at(-1)!;
    t.equal(real.id, 200);
    t.ok(real.packet?.includes(Buffer.from(vin!.split('.').map(Number))), 'rewritten to the VIN');
    await until('the RESERVE for the name', () => reserves() === 1);
    dp.emit({ kind: 'dns-answer', id: 201, packet: answer(0x4242) });
    t.same(dp.dns.at(-1), { id: 201, packet: null }, 'a second answer to the same query is dropped');
    t.equal(reserves(), 1, 'one RESERVE in all');
  },
);

t.test(
  'DNS: with the VIN range full of live VINs, an answer for a new name is dropped (never GGR to the application)',
  async (t) => {
    const { dp, agent, lines } = await setup(t);
    const PC = '192.168.1.10';
    const RESOLVER = dp.resolvers[0]!;
    // fill the table: every VIN handed out just now (inside its TTL and grace)
    const slots = agent.vins.range.last - agent.vins.range.first - 1;
    for (let i = agent.vins.entries().length; i < slots; i++)
      agent.vins.assign(`n${i}.corp.example`, 60, Date.now());
    const name = 'late.corp.example';
    dp.emit({ kind: 'dns-query', packet: udpPacket(PC, 40200, RESOLVER, 53, buildQuery(7, name)) });
    const reply = buildResponse(parseDns(buildQuery(7, name)), { a: ['127.0.0.1'], ttl: 30 });
    dp.emit({ kind: 'dns-answer', id: 300, packet: udpPacket(RESOLVER, 53, PC, 40200, reply) });
    t.same(dp.dns.at(-1), { id: 300, packet: null }, 'dropped');
    t.ok(
      lines.some((l) => l.reason === 'vin-exhausted'),
      'and the log says why',
    );
  },
);
