// The agent daemon against a gateway that restarts: a real AgentDaemon and a real GatewayControl
// talking UDP over loopback; the packet path is a recording fake (the engine has its own tests,
// the lab runs the whole thing).
import t, { type Test } from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { Writable } from 'node:stream';
import { createLogger, protocol } from '@gsra/common';
import { AgentDaemon } from '../src/agent.ts';
import { checkAgentConfig } from '../src/config.ts';
import type { AgentDataPlane, AgentDataPlaneEvent, FiveTuple, VatEntry } from '../src/data-plane.ts';
import { ALICE_SECRET, FakeDirectory, GK1 } from '../../common/test/protocol/harness.ts';

const IN1 = 'intra1.corp.example';

/** A gateway process whose protocol state can be lost (a crash and restart) while its socket stays. */
class LoopbackGateway {
  control!: protocol.GatewayControl;
  sessionsUp = 0;
  private timer: NodeJS.Timeout | undefined;
  private constructor(
    readonly sock: Socket,
    readonly dir: FakeDirectory,
  ) {
    this.restart();
    sock.on('message', (m, r) =>
      this.apply(this.control.handleDatagram(m, { addr: r.address, port: r.port }, Date.now())),
    );
  }
  static async open(): Promise<LoopbackGateway> {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return new LoopbackGateway(sock, new FakeDirectory());
  }
  get port(): number {
    return this.sock.address().port;
  }
  /** Forget every session, as a gateway that was killed and started again does. */
  restart(): void {
    this.control = new protocol.GatewayControl({
      policy: this.dir,
      controlPort: this.sock.address().port,
      keepaliveIntervalSec: 1,
    });
  }
  private apply(r: protocol.GatewayResult): void {
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

async function setup(t: Test) {
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
      fetchedAt: Date.now(),
    },
    { logger, dataPlane: dp },
  );
  t.teardown(() => agent.stop());
  await agent.start();
  await until('the session', () => agent.status().groups[0]!.session === 'up');
  const vin = agent.vins.assign(IN1, 60, Date.now()).vin;
  const syn = (sport: number): FiveTuple => ({
    proto: 'tcp',
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
  t.match(dp.added[0], { proto: 'tcp', s: 50000, d: 80, ggr: '127.0.0.1' });
  t.ok(dp.added[0]!.t >= 40000 && dp.added[0]!.t < 41000, `t=${dp.added[0]!.t} is from the gateway's pool`);
  t.equal(gw.sessionsUp, 1);
  t.same(dp.failed, [], 'nothing failed');
});

t.test(
  'a restarted gateway: one new session, the dead flows go, the next packet leaves on the new one',
  async (t) => {
    const { gw, dp, agent, lines, syn } = await setup(t);
    dp.emit({ kind: 'held', ...syn(50001) });
    await until('the first flow', () => dp.added.length === 1);
    const first = dp.added[0]!;

    gw.restart(); // the next KEEPALIVE meets a gateway that knows no session: unknown-session
    await until('a session on the restarted gateway', () => gw.sessionsUp === 2);
    await until('the agent up again', () => agent.status().groups[0]!.session === 'up');
    t.same(dp.removed, [first.id], 'the old session’s flow was removed from the engine');
    t.ok(
      lines.some(
        (l) => l.message === 'flow ended' && l.state === 'session-down' && l.reason === 'unknown-session',
      ),
      'and the agent logged why',
    );

    // The application retransmits its SYN: with the flow gone the engine holds it again.
    dp.emit({ kind: 'held', ...syn(50001) });
    await until('the new flow', () => dp.added.length === 2);
    t.not(dp.added[1]!.t, first.t, 'on a port of the new session');

    // Longer than the re-login backoff (1 s): a stray second login would show up here.
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(gw.sessionsUp, 2, 'exactly one new session, not one per path that noticed the loss');
    t.equal(gw.control.stats().sessions, 1, 'the gateway holds one session for alice');
  },
);
