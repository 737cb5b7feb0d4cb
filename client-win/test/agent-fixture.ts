// What the agent daemon tests share: a gateway on loopback whose protocol state can be lost (a
// crash) and whose ears can be shut to a dead agent's socket, a recording packet path (the test
// plays the engine), and an agent daemon logged in as alice with its own state directory.
import type { Test } from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, protocol } from '@gsra/common';
import { AgentDaemon } from '../src/daemon.ts';
import { checkAgentConfig } from '../src/config.ts';
import type { AgentDataPlane, AgentDataPlaneEvent, ArmPort, FiveTuple, VatEntry } from '../src/data-plane.ts';
import { ALICE_SECRET, FakeDirectory, GK1, RESET_KEY } from '../../common/test/protocol/harness.ts';

export const IN1 = 'intra1.corp.example';

/** A gateway process whose protocol state can be lost (a crash and restart) while its socket stays. */
export class LoopbackGateway {
  control!: protocol.GatewayControl;
  sessionsUp = 0;
  /** The agent's control address of each session made (its source port). */
  peers: number[] = [];
  /** Source ports whose datagrams are not heard (a killed agent's socket). */
  readonly muted = new Set<number>();
  /** KEEPALIVEs received (0x16): proof that time passes with the agent alive. */
  keepalives = 0;
  private timer: NodeJS.Timeout | undefined;
  private constructor(
    readonly sock: Socket,
    readonly dir: FakeDirectory,
  ) {
    this.restart();
    sock.on('message', (m, r) => {
      if (this.muted.has(r.port)) return;
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
    for (const e of r.events)
      if (e.kind === 'session-up') {
        this.sessionsUp++;
        this.peers.push(Number(e.en.split(':')[1]));
      }
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
export class RecordingDataPlane implements AgentDataPlane {
  readonly resolvers = ['192.0.2.53'];
  /** DNS verdicts: the punt id, and the packet let through (null: dropped). */
  dns: Array<{ id: number; packet: Buffer | undefined | null }> = [];
  added: Array<VatEntry & { id: number; beforeStart: boolean; snapshot?: Buffer }> = [];
  started = false;
  removed: number[] = [];
  failed: FiveTuple[] = [];
  private cb: (e: AgentDataPlaneEvent) => void = () => {};
  private nextId = 1;
  start(): void {
    this.started = true;
  }
  /** What the engine would snapshot, by flow id (a test sets it). */
  snapshots = new Map<number, Buffer>();
  addFlow(e: VatEntry, snapshot?: Buffer): number {
    const id = this.nextId++;
    this.added.push({ ...e, id, beforeStart: !this.started, snapshot });
    return id;
  }
  flowSnapshots(): Array<{ id: number; snapshot: Buffer }> {
    return [...this.snapshots].map(([id, snapshot]) => ({ id, snapshot }));
  }
  removeFlow(id: number): void {
    this.removed.push(id);
  }
  /** Taken out like removeFlow, the application reset (the engine's own tests show how). */
  resetFlow(id: number): void {
    this.removed.push(id);
  }
  failHeld(key: FiveTuple): void {
    this.failed.push(key);
  }
  /** The engine's pool, as engine/pool.rs keeps it: ports in the order armed, by `${proto}/${t}`. */
  armed = new Map<string, ArmPort>();
  excluded = new Set<string>();
  armPort(p: ArmPort): void {
    this.armed.set(`${p.proto}/${p.t}`, p);
  }
  withdrawPort(proto: number, t: number): boolean {
    return this.armed.delete(`${proto}/${t}`);
  }
  /** Ports whose renewal the engine accepted (still pooled), and refused (taken). */
  renewed: Array<{ t: number; ok: boolean }> = [];
  renewPort(proto: number, t: number, validMs: number): boolean {
    const p = this.armed.get(`${proto}/${t}`);
    if (p) p.validMs = validMs;
    this.renewed.push({ t, ok: !!p });
    return !!p;
  }
  clearPorts(): void {
    this.armed.clear();
  }
  excludeFromPool(vin: string, d: number, on: boolean): void {
    if (on) this.excluded.add(`${vin}:${d}`);
    else this.excluded.delete(`${vin}:${d}`);
  }
  private poolIds = 0x8000_0000;
  /**
   * What the engine does with a new connection's first packet when a port for its VIN is armed:
   * takes the oldest, and reports it - at once, or later through the returned function (a test
   * plays the event arriving after the daemon acted). Null when none is armed.
   */
  takePooled(key: FiveTuple, report = true): { t: number; id: number; emit: () => void } | null {
    const [k, p] = [...this.armed].find(([, p]) => p.vin === key.dst && p.proto === key.proto) ?? [];
    if (!k || !p) return null;
    this.armed.delete(k);
    const id = this.poolIds++;
    const emit = () => this.emit({ kind: 'pool-taken', id, t: p.t, serial: p.serial, ...key });
    if (report) emit();
    return { t: p.t, id, emit };
  }
  dnsVerdict(id: number, packet?: Buffer): void {
    this.dns.push({ id, packet });
  }
  dnsDrop(id: number): void {
    this.dns.push({ id, packet: null });
  }
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

export async function until(what: string, pred: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface SetupOptions {
  maxAgeHours?: number;
  fetchedAt?: number;
  /** A gateway already running (a second agent run talks to the same one). */
  gw?: LoopbackGateway;
  /** The agent's state directory (default: a fresh one). */
  stateDir?: string;
}

/** An agent daemon logged in as alice (sales) on a loopback gateway; stopped when the test ends. */
export async function setup(t: Test, opts: SetupOptions = {}) {
  const gw = opts.gw ?? (await LoopbackGateway.open());
  if (!opts.gw) t.teardown(() => gw.close());
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'gsra-agent-state-'));
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
    stateDir,
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
  return { gw, dp, agent, lines, syn, stateDir, vin };
}
