// The whole GSRA system in the lab: the demo directory (slapd over TLS on the directory host,
// LDAPS published at the office edge), gsra-gateway on the gateway, real servers on the LAN, and
// gsra-agent logged in on the teleworker PCs. Used by `npm run lab` and the end-to-end tests.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSlapd, type SlapdFixture } from '../../ldap/src/fixture/index.ts';
import type { AgentStatus } from '../../client-win/src/agent.ts';
import { Lab, ADDR, type HostName, type NatKind } from '../lab/lab.ts';
import { inNs, waitFor, type Proc } from '../lab/exec.ts';
import {
  startHttp,
  startFtp,
  startSshd,
  type FtpServer,
  type SshServer,
  type WebServer,
} from '../lab/services.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GATEWAY_BIN = join(root, 'gateway', 'bin', 'gsra-gateway.mjs');
export const AGENT_BIN = join(root, 'client-win', 'bin', 'gsra-agent.mjs');
export const ZONE = 'corp.example';
export const IN1 = `intra1.${ZONE}`;
export const IN2 = `intra2.${ZONE}`;

export interface AgentHandle {
  host: HostName;
  user: string;
  proc: Proc;
  config: string;
  logFile: string;
  /** `gsra-agent status --json`, parsed. */
  status(): Promise<AgentStatus>;
  /** `gsra-agent status` as a person reads it. */
  statusText(): Promise<string>;
}

export type { AgentStatus };

export interface GsraLab {
  lab: Lab;
  directory: SlapdFixture;
  gateway: Proc;
  gatewayLog: string;
  web1: WebServer;
  web2: WebServer;
  ftp: FtpServer;
  ssh: SshServer;
  agents: Partial<Record<HostName, AgentHandle>>;
  /** Kill the gateway the hard way (SIGKILL: no cleanup), as a crash would. */
  killGateway(): Promise<void>;
  /** Start the gateway again with the same config; resolves once /healthz answers. */
  startGateway(): Promise<void>;
  /** Log a user in on a teleworker PC and start its agent. */
  startAgent(host: 'en1' | 'en2', user: 'alice' | 'bob'): Promise<AgentHandle>;
  /** JSON log lines a daemon wrote so far. */
  logLines(file: string): Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface GsraLabOptions {
  nat?: NatKind;
  ens?: 1 | 2;
  offloads?: boolean;
  /** Gateway control timers (short ones let a test span several mapping renewals). */
  control?: { keepaliveSec: number; mappingLifetimeSec: number; sessionIdleSec: number };
}

export async function startGsraLab(opts: GsraLabOptions = {}): Promise<GsraLab> {
  const lab = await Lab.create(opts);
  try {
    return await build(lab, opts);
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

async function build(lab: Lab, opts: GsraLabOptions): Promise<GsraLab> {
  // 1. The directory, on the LAN, with LDAPS also published on the gateway's public address.
  const directory = await startSlapd({
    dir: join(lab.dir, 'slapd'),
    host: ADDR.dir,
    ports: { ldap: 389, ldaps: 636 },
    certNames: [ADDR.gwWan, `ldap.${ZONE}`],
    spawnPrefix: inNs(lab.ns('dir'), []),
  });
  const onStop: (() => Promise<void>)[] = [() => directory.stop()];
  await lab.exec('gw', [
    'iptables',
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-i',
    'wan0',
    '-d',
    ADDR.gwWan,
    '-p',
    'tcp',
    '--dport',
    '636',
    '-j',
    'DNAT',
    '--to-destination',
    `${ADDR.dir}:636`,
  ]);
  // 2. Internal servers.
  const web1 = await startHttp(lab, 'in1');
  const web2 = await startHttp(lab, 'in2');
  const ftp = await startFtp(lab, 'in1');
  const ssh = await startSshd(lab, 'in2', [IN2]);
  // 3. The gateway.
  writeFileSync(join(lab.dir, 'gateway-ldap-password'), directory.gatewayPassword, { mode: 0o600 });
  const gwConfig = join(lab.dir, 'gateway.json');
  writeFileSync(
    gwConfig,
    JSON.stringify(
      {
        publicAddress: ADDR.gwWan,
        privateAddress: ADDR.gwLan,
        wanInterface: 'wan0',
        lanInterface: 'lan0',
        ldap: {
          url: `ldaps://${ADDR.dir}:636`,
          caFile: directory.caFile,
          baseDn: directory.baseDn,
          bindDn: directory.gatewayDn,
          passwordFile: join(lab.dir, 'gateway-ldap-password'),
          refreshSec: 5,
        },
        dns: { enabled: true, zone: ZONE },
        ...(opts.control ? { control: opts.control } : {}),
        log: { level: 'debug' },
      },
      null,
      2,
    ),
  );
  const gatewayLog = join(lab.dir, 'gateway.log');
  const launchGateway = async (): Promise<Proc> => {
    const p = lab.spawn(
      'gw',
      'gsra-gateway',
      ['node', GATEWAY_BIN, 'run', '--config', gwConfig],
      undefined,
      gatewayLog,
    );
    await waitFor(
      'gsra-gateway to answer /healthz',
      async () => {
        if (!p.running) throw new Error(`gsra-gateway exited: ${p.log}`);
        return (
          (await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/healthz'], { allowFail: true }))
            .code === 0
        );
      },
      15_000,
      100,
    );
    return p;
  };
  const gateway = await launchGateway();

  const agents: Partial<Record<HostName, AgentHandle>> = {};
  const g: GsraLab = {
    lab,
    directory,
    gateway,
    gatewayLog,
    web1,
    web2,
    ftp,
    ssh,
    agents,
    async killGateway() {
      await g.gateway.stop('SIGKILL');
    },
    async startGateway() {
      g.gateway = await launchGateway();
    },
    logLines(file: string) {
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async startAgent(host, user) {
      const config = join(lab.dir, `agent-${host}.json`);
      writeFileSync(
        config,
        JSON.stringify(
          {
            gateway: { address: ADDR.gwWan },
            zones: [ZONE],
            ldap: { url: `ldaps://${ADDR.gwWan}:636`, caFile: directory.caFile, baseDn: directory.baseDn },
            stateDir: join(lab.dir, `agent-${host}-state`),
            log: { level: 'debug' },
          },
          null,
          2,
        ),
      );
      await lab.exec(host, ['node', AGENT_BIN, 'login', '--config', config, '--user', user], {
        env: { ...process.env, GSRA_PASSWORD: directory.users[user].password },
        timeoutMs: 20_000,
      });
      const logFile = join(lab.dir, `agent-${host}.log`);
      const proc = lab.spawn(
        host,
        'gsra-agent',
        ['node', AGENT_BIN, 'run', '--config', config],
        undefined,
        logFile,
      );
      const handle: AgentHandle = {
        host,
        user,
        proc,
        config,
        logFile,
        async status() {
          const r = await lab.exec(host, ['node', AGENT_BIN, 'status', '--json', '--config', config]);
          return JSON.parse(r.stdout) as AgentStatus;
        },
        async statusText() {
          return (await lab.exec(host, ['node', AGENT_BIN, 'status', '--config', config])).stdout;
        },
      };
      await waitFor(
        `gsra-agent on ${host} to bring its session up`,
        async () => {
          if (!proc.running) throw new Error(`gsra-agent on ${host} exited: ${proc.log}`);
          const s = await handle.status().catch(() => null);
          return Boolean(s?.groups.every((x) => x.session === 'up'));
        },
        20_000,
        200,
      );
      agents[host] = handle;
      return handle;
    },
    async stop() {
      for (const f of onStop) await f().catch(() => {});
      await lab.destroy();
    },
  };
  return g;
}
