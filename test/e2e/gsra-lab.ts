// The whole GSRA system in the lab: the demo directory (slapd over TLS, or a Samba AD DC, on the
// directory host, LDAPS published at the office edge), gsra-gateway on the gateway, real servers
// on the LAN, and gsra-agent logged in on the teleworker PCs. Used by `npm run lab` and the
// end-to-end tests.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startSambaAd,
  startSlapd,
  type SambaFixture,
  type SlapdFixture,
} from '../../ldap/src/fixture/index.ts';
import type { AgentStatus } from '../../client-win/src/daemon.ts';
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

/** The office directory as the lab set it up: slapd (OpenLDAP) or a Samba AD DC. */
export interface LabDirectory {
  flavor: 'openldap' | 'ad';
  caFile: string;
  baseDn: string;
  /** The demo users' passwords, by demo name (alice, bob; on AD also dave and erin). */
  passwords: Record<string, string>;
  /** Set on OpenLDAP. */
  slapd?: SlapdFixture;
  /** Set on AD. */
  samba?: SambaFixture;
  /** Run an LDAP modify (LDIF) as the directory's administrator, from the directory host. */
  modify(ldif: string): Promise<void>;
}

export type DemoUser = 'alice' | 'bob' | 'dave' | 'erin';

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
  directory: LabDirectory;
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
  /** Kill a PC's agent the hard way (SIGKILL: no cleanup, its kernel rules stay), as a crash would. */
  killAgent(host: 'en1' | 'en2'): Promise<void>;
  /** Start a killed agent again on its config and state directory, without a login. */
  restartAgent(host: 'en1' | 'en2'): Promise<AgentHandle>;
  /**
   * Log a demo user in on a teleworker PC and start its agent. `login` is the id typed at login
   * (default: the demo name; on AD the agents have upnSuffix corp.example). With `waitUp: false`
   * it returns as soon as the agent runs (e.g. when the gateway is expected to refuse it).
   */
  startAgent(
    host: 'en1' | 'en2',
    user: DemoUser,
    opts?: { login?: string; skipLogin?: boolean; waitUp?: boolean; config?: Record<string, unknown> },
  ): Promise<AgentHandle>;
  /** The gateway's policy refresh interval (s). */
  refreshSec: number;
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
  /** The office directory: slapd (default) or a Samba AD DC (`npm run lab -- --ad`). */
  directory?: 'openldap' | 'ad';
  /** The gateway's policy refresh interval (default 5 s). */
  refreshSec?: number;
  /** More gateway config keys (e.g. `audit`), merged over the lab's. */
  gatewayConfig?: Record<string, unknown>;
}

/** slapd or Samba AD on the directory host (ADDR.dir, 389/636), its certificate also valid for GGR. */
async function startDirectory(lab: Lab, kind: 'openldap' | 'ad'): Promise<LabDirectory> {
  const certNames = [ADDR.gwWan, `ldap.${ZONE}`];
  if (kind === 'ad') {
    const samba = await startSambaAd({
      netns: lab.ns('dir'),
      serviceAddresses: [ADDR.dir],
      certNames,
    });
    const u = samba.users;
    return {
      flavor: 'ad',
      caFile: samba.caFile,
      baseDn: samba.baseDn,
      passwords: {
        alice: u.alice.password,
        bob: u.bob.password,
        dave: u.dave.password,
        erin: u.erin.password,
      },
      samba,
      async modify(ldif) {
        await lab.exec(
          'dir',
          ['ldapmodify', '-x', '-H', `ldaps://${ADDR.dir}`, '-D', samba.adminUpn, '-w', samba.adminPassword],
          { env: { ...process.env, LDAPTLS_CACERT: samba.caFile }, input: ldif },
        );
      },
    };
  }
  const slapd = await startSlapd({
    dir: join(lab.dir, 'slapd'),
    host: ADDR.dir,
    ports: { ldap: 389, ldaps: 636 },
    certNames,
    spawnPrefix: inNs(lab.ns('dir'), []),
  });
  return {
    flavor: 'openldap',
    caFile: slapd.caFile,
    baseDn: slapd.baseDn,
    passwords: { alice: slapd.users.alice.password, bob: slapd.users.bob.password },
    slapd,
    async modify(ldif) {
      await lab.exec(
        'dir',
        ['ldapmodify', '-x', '-H', `ldaps://${ADDR.dir}`, '-D', slapd.rootDn, '-w', slapd.rootPassword],
        { env: { ...process.env, LDAPTLS_CACERT: slapd.caFile }, input: ldif },
      );
    },
  };
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
  const directory = await startDirectory(lab, opts.directory ?? 'openldap');
  const onStop: (() => Promise<void>)[] = [
    async () => {
      await directory.slapd?.stop();
      await directory.samba?.stop();
    },
  ];
  const refreshSec = opts.refreshSec ?? 5;
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
  const gwLdap =
    directory.flavor === 'ad'
      ? {
          baseDn: directory.samba!.baseDn,
          groupsDn: directory.samba!.groupsDn,
          flavor: 'ad',
          upnSuffix: ZONE,
          bindDn: directory.samba!.gatewayUpn,
          password: directory.samba!.gatewayPassword,
        }
      : {
          baseDn: directory.slapd!.baseDn,
          bindDn: directory.slapd!.gatewayDn,
          password: directory.slapd!.gatewayPassword,
        };
  const { password: gwPassword, ...gwLdapConfig } = gwLdap;
  writeFileSync(join(lab.dir, 'gateway-ldap-password'), gwPassword, { mode: 0o600 });
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
          ...gwLdapConfig,
          passwordFile: join(lab.dir, 'gateway-ldap-password'),
          refreshSec,
        },
        dns: { enabled: true, zone: ZONE },
        // the lab's own (the default, /var/lib/gsra-gateway, would be shared by every lab on the
        // machine: one lab's restart would restore another's sessions)
        stateDir: join(lab.dir, 'gateway-state'),
        ...(opts.control ? { control: opts.control } : {}),
        log: { level: 'debug' },
        ...opts.gatewayConfig,
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
    refreshSec,
    async killGateway() {
      await g.gateway.stop('SIGKILL');
    },
    async startGateway() {
      g.gateway = await launchGateway();
    },
    async killAgent(host) {
      await agents[host]?.proc.stop('SIGKILL');
    },
    async restartAgent(host) {
      const a = agents[host];
      if (!a) throw new Error(`no agent was started on ${host}`);
      return g.startAgent(host, a.user as DemoUser, { skipLogin: true });
    },
    logLines(file: string) {
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async startAgent(host, user, o = {}) {
      const config = join(lab.dir, `agent-${host}.json`);
      const ldap = {
        url: `ldaps://${ADDR.gwWan}:636`,
        caFile: directory.caFile,
        baseDn: directory.baseDn,
        ...(directory.flavor === 'ad' ? { flavor: 'ad', upnSuffix: ZONE } : {}),
      };
      writeFileSync(
        config,
        JSON.stringify(
          {
            gateway: { address: ADDR.gwWan },
            zones: [ZONE],
            ldap,
            stateDir: join(lab.dir, `agent-${host}-state`),
            log: { level: 'debug' },
            ...o.config,
          },
          null,
          2,
        ),
      );
      if (!o.skipLogin) {
        const password = directory.passwords[user];
        if (!password) throw new Error(`no demo user ${user} in the ${directory.flavor} directory`);
        await lab.exec(host, ['node', AGENT_BIN, 'login', '--config', config, '--user', o.login ?? user], {
          env: { ...process.env, GSRA_PASSWORD: password },
          timeoutMs: 20_000,
        });
      }
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
        `gsra-agent on ${host} to ${o.waitUp === false ? 'run' : 'bring its session up'}`,
        async () => {
          if (!proc.running) throw new Error(`gsra-agent on ${host} exited: ${proc.log}`);
          const s = await handle.status().catch(() => null);
          return o.waitUp === false ? s !== null : Boolean(s?.groups.every((x) => x.session === 'up'));
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
