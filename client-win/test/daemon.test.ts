// The agent daemon against a gateway that restarts: a real AgentDaemon and a real GatewayControl
// talking UDP over loopback; the packet path is a recording fake (the engine has its own tests,
// the lab runs the whole thing).
import t, { type Test } from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { Writable } from 'node:stream';
import { createLogger, protocol } from '@gsra/common';
import { AgentDaemon } from '../src/daemon.ts';
import { checkAgentConfig } from '../src/config.ts';
import type { AgentDataPlane, AgentDataPlaneEvent, FiveTuple, VatEntry } from '../src/data-plane.ts';
import { ALICE_SECRET, FakeDirectory, GK1, RESET_KEY } from '../../common/test/protocol/harness.ts';

const IN1 = 'intra1.corp.example';

/** A gateway process whose protocol state can be lost (a crash and restart) while its socket stays. */
class LoopbackGateway {
  control!: protocol.GatewayControl;
  sessionsUp = 0;
  /** KEEPALIVEs received (0x16): proof that time passes with the agent alive. */
  keepalives = 0;
  private timer: NodeJS.Timeout | undefined;
  private constructor(
    readonly sock: Socket,
    readonly dir: FakeDirectory,
  ) {
    this.restart();
    sock.on('message', (m, r) => {
      if (m[3] === 0x16) this.keepalives++;
      this.apply(this.control.handleDatagram(m, { addr: r.address, port: r.port }, Date.now()));
    });
  }
  static async open(): Promise<LoopbackGateway> {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return new LoopbackGateway(sock, new FakeDirectory());
  }
  get port(): number {
    return this.sock.address().port;
  }
  /** Forget every session, as a gateway that was killed and started again does (its reset key persists). */
  restart(): void {
    this.control = new protocol.GatewayControl({
      policy: this.dir,
      resetKey: RESET_KEY,
      controlPort: this.sock.address().port,
      keepaliveIntervalSec: 1,
    });
  }
  apply(r: protocol.GatewayResult): void {
    for (const e of r.events) if (e.kind === 'session-up') this.sessionsUp++;
    for (const o of r.send) this.sock.send(o.data, o.to.port, o.to.addr);
    if (this.timer) clearTimeout(this.timer);
    const next = this.control.nextDeadline();
    if (next !== null)
      this.timer = setTimeout(
        () => this.apply(this.control.poll(Date.now())),
        Math.max(0, next - Date.now()),
      );
  }
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.sock.close();
  }
}

/** Records what the daemon asks of the packet path; the test plays the engine's events. */
class RecordingDataPlane implements AgentDataPlane {
  added: Array<VatEntry & { id: number }> = [];
  removed: number[] = [];
  failed: FiveTuple[] = [];
  private cb: (e: AgentDataPlaneEvent) => void = () => {};
  private nextId = 1;
  start(): void {}
  addFlow(e: VatEntry): number {
    const id = this.nextId++;
    this.added.push({ ...e, id });
    return id;
  }
  removeFlow(id: number): void {
    this.removed.push(id);
  }
  failHeld(key: FiveTuple): void {
    this.failed.push(key);
  }
  dnsVerdict(): void {}
  flowCounters() {
    return null;
  }
  onEvent(cb: (e: AgentDataPlaneEvent) => void): void {
    this.cb = cb;
  }
  emit(e: AgentDataPlaneEvent): void {
    this.cb(e);
  }
  stats(): Record<string, number> {
    return {};
  }
  async close(): Promise<void> {}
}

async function until(what: string, pred: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup(t: Test, opts: { maxAgeHours?: number; fetchedAt?: number } = {}) {
  const gw = await LoopbackGateway.open();
  t.teardown(() => gw.close());
  const dp = new RecordingDataPlane();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('agent', {
    level: 'debug',
    stream: new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  });
  const config = checkAgentConfig({
    gateway: { address: '127.0.0.1', controlPort: gw.port },
    zones: ['corp.example'],
    ldap: { url: 'ldaps://127.0.0.1', caFile: '/dev/null', baseDn: 'dc=corp' },
    stateDir: '/nonexistent',
    ...(opts.maxAgeHours ? { login: { maxAgeHours: opts.maxAgeHours } } : {}),
  });
  config.ops = { listen: '127.0.0.1', port: 0 }; // any free port (the schema asks a fixed one)
  const agent = new AgentDaemon(
    config,
    {
      user: 'alice',
      dn: 'uid=alice,ou=people,dc=corp',
      secret: ALICE_SECRET,
      groups: [
        { name: 'sales', keys: [{ version: 1, key: GK1 }], hosts: [{ name: IN1, address: '10.0.0.11' }] },
      ],
      fetchedAt: opts.fetchedAt ?? Date.now(),
    },
    { logger, dataPlane: dp },
  );
  t.teardown(() => agent.stop());
  await agent.start();
  await until('the session', () => agent.status().groups[0]!.session === 'up');
  const vin = agent.vins.assign(IN1, 60, Date.now()).vin;
  const syn = (sport: number): FiveTuple => ({
    proto: 6,
    src: '192.168.1.10',
    sport,
    dst: vin,
    dport: 80,
  });
  return { gw, dp, agent, lines, syn };
}

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
