// gsra-agent: what the teleworker (or the Windows service) runs.
//   gsra-agent login --config FILE --user alice   (password: GSRA_PASSWORD, --password-file, or typed)
//   gsra-agent run --config FILE
//   gsra-agent status [--config FILE] [--json]
//   gsra-agent selftest | configure | windivert-guard   (install-commands.ts)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, serveUntilSignal } from '@gsra/common';
import { DirectoryError } from '@gsra/ldap';
import { DEFAULT_OPS_PORT, defaultConfigPath, loadAgentConfig, type AgentConfig } from './config.ts';
import { loadCredentials, credentialsTooOld, CredentialsError } from './credentials.ts';
import { login } from './login.ts';
import { readPassword, PromptCancelled } from './prompt.ts';
import { platformDataPlane, type AgentDataPlane } from './data-plane.ts';
import type { AgentStatus } from './daemon.ts';
import { installCommand, INSTALL_COMMANDS, INSTALL_USAGE } from './install-commands.ts';
import { stopOnStdinEnd } from './service-stop.ts';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `usage: gsra-agent <command> [options]

commands:
  login --user NAME     log in to the directory (LDAP over TLS) and store the user's GSRA secret and group keys
  run                   run the agent (internal names resolve to VINs; connections go through the gateway)
  status [--json]       user, groups, VINs with names, flows with bytes, state and age
${INSTALL_USAGE}
options:
  -c, --config FILE     agent config (default ${defaultConfigPath()})
  --password-file FILE  login: read the password from FILE (else GSRA_PASSWORD, else typed)
  -h, --help            this text
`;

export type AgentDataPlaneFactory = (c: AgentConfig) => Promise<AgentDataPlane>;

export async function main(argv: string[], io: CliIo, dataPlane?: AgentDataPlaneFactory): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c', default: defaultConfigPath() },
        user: { type: 'string', short: 'u' },
        'password-file': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        service: { type: 'boolean' },
        'open-windivert': { type: 'boolean' },
        out: { type: 'string' },
        gateway: { type: 'string' },
        zones: { type: 'string' },
        'ldap-url': { type: 'string' },
        'ldap-ca': { type: 'string' },
        'base-dn': { type: 'string' },
        flavor: { type: 'string' },
        'upn-suffix': { type: 'string' },
        'vin-range': { type: 'string' },
      },
    });
  } catch (e) {
    io.stderr(`gsra-agent: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const cmd = positionals[0];
  if (values.help || !cmd) {
    (values.help ? io.stdout : io.stderr)(USAGE);
    return values.help ? 0 : 2;
  }
  if (INSTALL_COMMANDS.includes(cmd)) return installCommand(cmd, values, io);
  if (!['login', 'run', 'status'].includes(cmd)) {
    io.stderr(`gsra-agent: unknown command "${cmd}"\n${USAGE}`);
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadAgentConfig(values.config!);
  } catch (e) {
    // status asks the running agent; a user who may not read the config (Windows: it is
    // admin-only) still gets it, from the default local endpoint.
    if (cmd === 'status' && !(e instanceof ConfigError && !/expected a readable file/.test(e.message)))
      return status({ ops: { listen: '127.0.0.1', port: DEFAULT_OPS_PORT } }, Boolean(values.json), io);
    io.stderr(`gsra-agent: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    return 1;
  }
  if (cmd === 'login') {
    if (!values.user) {
      io.stderr('gsra-agent login: --user NAME is required\n');
      return 2;
    }
    let password: string;
    try {
      password = values['password-file']
        ? readFileSync(values['password-file'], 'utf8').replace(/\r?\n$/, '')
        : (io.env.GSRA_PASSWORD ?? (await readPassword(`password for ${values.user}: `)));
    } catch (e) {
      io.stderr(`gsra-agent login: ${e instanceof PromptCancelled ? 'cancelled' : (e as Error).message}\n`);
      return 1;
    }
    try {
      const c = await login(config, values.user, password);
      const as = c.typed ? `${c.user} (${c.typed})` : c.user;
      io.stdout(`logged in as ${as}; groups: ${c.groups.map((g) => g.name).join(', ')}\n`);
      return 0;
    } catch (e) {
      io.stderr(`gsra-agent login: ${e instanceof DirectoryError ? e.message : (e as Error).message}\n`);
      return 1;
    }
  }
  if (cmd === 'status') return status(config, Boolean(values.json), io);
  return run(config, io, dataPlane ?? platformDataPlane, Boolean(values.service));
}

async function run(
  config: AgentConfig,
  io: CliIo,
  factory: AgentDataPlaneFactory,
  service = false,
): Promise<number> {
  const logger = createLogger('agent', { level: config.log.level });
  let creds;
  try {
    creds = loadCredentials(config.stateDir);
    const tooOld = credentialsTooOld(creds, config.login.maxAgeHours);
    if (tooOld) throw new CredentialsError(tooOld);
  } catch (e) {
    io.stderr(`gsra-agent: ${e instanceof CredentialsError ? e.message : (e as Error).message}\n`);
    return 1;
  }
  const { AgentDaemon } = await import('./daemon.ts');
  let agent;
  try {
    agent = new AgentDaemon(config, creds, { logger, dataPlane: await factory(config) });
    await agent.start();
  } catch (e) {
    logger.error('agent failed to start', { reason: (e as Error).message });
    io.stderr(`gsra-agent: cannot start: ${(e as Error).message}\n`);
    // Sessions may already be open: close them, so the process ends (the service host restarts it).
    await agent?.stop().catch(() => {});
    return 1;
  }
  // Under the Windows service host, the end of stdin is the stop signal (service-stop.ts).
  const release = service ? stopOnStdinEnd() : undefined;
  const code = await serveUntilSignal(agent, logger);
  release?.();
  return code;
}

async function status(config: Pick<AgentConfig, 'ops'>, json: boolean, io: CliIo): Promise<number> {
  let body: string;
  try {
    const res = await fetch(`http://${config.ops.listen}:${config.ops.port}/status`, {
      signal: AbortSignal.timeout(3000),
    });
    body = await res.text();
  } catch (e) {
    io.stderr(`gsra-agent status: the agent is not running (${(e as Error).message})\n`);
    return 1;
  }
  if (json) {
    io.stdout(body);
    return 0;
  }
  const s = JSON.parse(body) as AgentStatus;
  const lines = [
    `user:   ${s.user}`,
    `login:  ${s.login.expired ?? `valid until ${s.login.expiresAt}`}`,
    `groups: ${s.groups
      .map(
        (g) =>
          `${g.name} (session ${g.session}${g.error ? `: ${g.error}` : ''}${g.nextLogin ? `; next login ${g.nextLogin}` : ''})`,
      )
      .join(', ')}`,
    'VINs:',
    ...s.vins.map((v) => `  ${v.vin.padEnd(16)} ${v.name}`),
    'flows:',
    ...(s.flows.length
      ? s.flows.map(
          (f) =>
            `  ${f.proto} ${f.in}:${f.vin.split(':')[1]} via ${f.vin.split(':')[0]}  ${f.state}  out ${f.bytesOut} B  in ${f.bytesIn} B  age ${f.ageSec} s`,
        )
      : ['  (none)']),
  ];
  io.stdout(lines.join('\n') + '\n');
  return 0;
}
