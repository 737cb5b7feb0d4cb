// What the gateway daemon tests share: a recording data plane (the test plays the engine), and a
// gateway of its own per test on a real slapd, with its log lines and agents that log in over
// real UDP.
import type { Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger, protocol, type StateStore } from '@gsra/common';
import type { SlapdFixture } from '../../ldap/src/fixture/index.ts';
import { checkGatewayConfig } from '../src/config.ts';
import { GatewayDaemon } from '../src/daemon.ts';
import type { AlgHandler, DataPlane, DataPlaneEvent, FlowCounts, FlowStateHooks } from '../src/data-plane.ts';
import { AgentDriver } from './agent-driver.ts';

/** Records what the daemon hands the packet path; the test plays the engine's events. */
export class RecordingDataPlane implements DataPlane {
  added: protocol.Reservation[] = [];
  removed: protocol.Reservation[] = [];
  alg: AlgHandler | undefined;
  flowState?: FlowStateHooks;
  /** What the engine counted per flow id (the test sets it); the daemon reads it before remove(). */
  counts = new Map<number, FlowCounts>();
  flowCounts(id: number): FlowCounts | undefined {
    return this.removed.some((r) => r.id === id) ? undefined : this.counts.get(id);
  }
  private cb: (e: DataPlaneEvent) => void = () => {};
  start(): void {}
  add(r: protocol.Reservation): void {
    this.added.push(r);
  }
  remove(r: protocol.Reservation): void {
    this.removed.push(r);
  }
  onEvent(cb: (e: DataPlaneEvent) => void): void {
    this.cb = cb;
  }
  emit(e: DataPlaneEvent): void {
    this.cb(e);
  }
  setAlg(alg: AlgHandler): void {
    this.alg = alg;
  }
  stats(): Record<string, number> {
    return {};
  }
  async close(): Promise<void> {}
}

export interface GatewayOptions {
  dataPlane?: DataPlane;
  /** Control port (default: random); a restarted gateway takes its predecessor's. */
  port?: number;
  /** The state directory (default: a fresh one); a restarted gateway takes its predecessor's. */
  stateDir?: string;
  store?: StateStore | null;
  refreshSec?: number;
}

/** The gateway tests' directory (a real slapd) and a folder for their files. */
export function gatewayFixture(dir: SlapdFixture) {
  const tmp = mkdtempSync(join(tmpdir(), 'gsra-gw-'));
  writeFileSync(join(tmp, 'ldap-password'), dir.gatewayPassword + '\n', { mode: 0o600 });
  const { alice } = dir.users;

  /** A gateway of its own for one test, with its log lines; stopped when the test ends. */
  async function gateway(t: Test, opts: DataPlane | GatewayOptions = {}) {
    const o: GatewayOptions = 'onEvent' in opts ? { dataPlane: opts } : opts;
    // Below the ephemeral range (32768–60999), base + 1 included: no outgoing connection holds either.
    const base = o.port ?? 20000 + Math.floor(Math.random() * 12767);
    const stateDir = o.stateDir ?? join(tmp, `state-${base}-${Math.random().toString(36).slice(2)}`);
    const config = checkGatewayConfig({
      publicAddress: '127.0.0.1',
      privateAddress: '127.0.0.1',
      wanInterface: 'lo',
      lanInterface: 'lo',
      control: { port: base },
      ports: { first: 40000, last: 40063, perUser: 32 },
      ldap: {
        url: dir.ldapsUrl,
        caFile: dir.caFile,
        baseDn: dir.baseDn,
        bindDn: dir.gatewayDn,
        passwordFile: join(tmp, 'ldap-password'),
        ...(o.refreshSec ? { refreshSec: o.refreshSec } : {}),
      },
      ops: { port: base + 1 },
      stateDir,
    });
    const logStream = new PassThrough();
    const lines: Record<string, unknown>[] = [];
    logStream.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
    });
    const gw = new GatewayDaemon(config, {
      logger: createLogger('gateway', { stream: logStream, level: 'debug' }),
      dataPlane: o.dataPlane,
      ...(o.store !== undefined ? { store: o.store } : {}),
    });
    await gw.start();
    let stopped = false;
    const stop = async () => {
      if (!stopped) await gw.stop();
      stopped = true;
    };
    t.teardown(stop);
    const gwAddr = { addr: '127.0.0.1', port: gw.controlPort };
    const login = async (
      user: typeof alice,
      group: string,
      key = dir.groups[group as 'sales'].key,
      secret = user.secret,
    ) => {
      const d = await AgentDriver.open(
        { user: user.uid, userSecret: secret, group, groupKey: { version: 1, key } },
        gwAddr,
      );
      t.teardown(() => d.close());
      d.apply(d.agent.login(Date.now()));
      return d;
    };
    /** alice, logged in to sales. */
    const aliceUp = async () => {
      const a = await login(alice, 'sales');
      await a.waitFor((e) => e.kind === 'session-up');
      return a;
    };
    /** Resolves once a log line matches (the gateway logs as it goes; nothing to sleep for). */
    const logged = async (pred: (l: Record<string, unknown>) => boolean, from = 0, ms = 3000) => {
      const end = Date.now() + ms;
      for (;;) {
        const l = lines.slice(from).find(pred);
        if (l) return l;
        if (Date.now() > end) throw new Error('no matching log line');
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    return { gw, gwAddr, lines, login, aliceUp, logged, stop, stateDir, port: base };
  }
  return { tmp, gateway };
}
