// gsra-agent's configuration: a JSON file validated against this schema (errors read
// "path: expected X, got Y"). See docs/agent.md.
import { join } from 'node:path';
import { compileConfig, ConfigError, schemaParts, type EngineConfig } from '@gsra/common';
import { parseCidr } from './vin.ts';

export interface AgentConfig {
  gateway: {
    /** GGR: the gateway's public address (what public DNS answers for every internal name). */
    address: string;
    controlPort: number;
    /** The gateway's reserved port range (its replies come from these ports). */
    ports: { first: number; last: number };
  };
  /** DNS zones whose names GSRA maps (e.g. corp.example). Answers for other names pass untouched. */
  zones: string[];
  /**
   * The resolvers the PC's applications ask. The agent acts only on their answers, to queries
   * it saw leave. Empty (default): the nameservers of /etc/resolv.conf (Linux); any resolver if
   * none can be read.
   */
  dns: { resolvers: string[] };
  /**
   * Range the agent takes VINs from. Default 198.19.224.0/20: inside the benchmarking block
   * (RFC 2544), away from 100.64.0.0/10 (Tailscale, Twingate, ZPA) and 198.18.0.0/16 (proxy
   * tools' fake-IP default).
   */
  vinRange: string;
  ldap: {
    url: string;
    caFile: string;
    baseDn: string;
    flavor: 'openldap' | 'ad';
    startTls: boolean;
    /** AD: a bare user id typed at login means id@upnSuffix (e.g. corp.example). */
    upnSuffix?: string;
    connectTimeoutMs: number;
    timeoutMs: number;
  };
  /** The stored login (user secret, group keys) is refused this long after `gsra-agent login`. */
  login: { maxAgeHours: number };
  /** Where the agent keeps its login (user secret, group keys): mode 0600 on Linux, DPAPI on Windows. */
  stateDir: string;
  /** Linux backend: the packet engine's queues (schemaParts.engine); `queues` is [outbound, inbound]. */
  engine: EngineConfig;
  /**
   * Flows behind a home NAT (docs/pccom.md §6.1): a live flow that sent nothing for
   * `persistentKeepaliveSec` sends a probe that keeps the NAT's mapping (as WireGuard's
   * PersistentKeepalive; 0 = never); a TCP flow whose traffic stopped is probed every
   * `quietProbeMs` for 10 s (0 = never), so a download whose NAT mapping was lost resumes.
   */
  roaming: { persistentKeepaliveSec: number; quietProbeMs: number };
  ops: { listen: string; port: number };
  log: { level: 'error' | 'warn' | 'info' | 'debug' };
}

const { ipv4, port } = schemaParts;

/** `gsra-agent status` asks the running agent here (loopback) unless the config says otherwise. */
export const DEFAULT_OPS_PORT = 9465;

/** Windows keeps config and state under %ProgramData%\\GSRA (SYSTEM and Administrators only). */
const programData = () => join(process.env.ProgramData ?? 'C:\\ProgramData', 'GSRA');
const onWindows = process.platform === 'win32';
export const defaultConfigPath = () =>
  onWindows ? join(programData(), 'agent.json') : '/etc/gsra/agent.json';
export const defaultStateDir = () => (onWindows ? join(programData(), 'state') : '/var/lib/gsra-agent');

export const AGENT_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['gateway', 'zones', 'ldap'],
  properties: {
    gateway: {
      type: 'object',
      additionalProperties: false,
      required: ['address'],
      properties: {
        address: ipv4,
        controlPort: { ...port, default: 4430 },
        ports: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { first: { ...port, default: 40000 }, last: { ...port, default: 59999 } },
        },
      },
    },
    zones: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: '^[a-zA-Z0-9-]+(\\.[a-zA-Z0-9-]+)*$' },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { resolvers: { type: 'array', items: ipv4, maxItems: 8, default: [] } },
    },
    vinRange: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+$', default: '198.19.224.0/20' },
    ldap: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'caFile', 'baseDn'],
      properties: {
        url: { type: 'string', pattern: '^ldaps?://' },
        caFile: { type: 'string', minLength: 1 },
        baseDn: { type: 'string', minLength: 3 },
        flavor: { type: 'string', enum: ['openldap', 'ad'], default: 'openldap' },
        startTls: { type: 'boolean', default: false },
        upnSuffix: { type: 'string', pattern: '^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*$' },
        connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 60000, default: 3000 },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 120000, default: 5000 },
      },
    },
    login: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { maxAgeHours: { type: 'number', exclusiveMinimum: 0, maximum: 8784, default: 168 } },
    },
    stateDir: { type: 'string', minLength: 1, default: defaultStateDir() },
    engine: schemaParts.engine,
    roaming: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        persistentKeepaliveSec: { type: 'integer', minimum: 0, maximum: 3600, default: 25 },
        quietProbeMs: { type: 'integer', minimum: 0, maximum: 10000, default: 500 },
      },
    },
    ops: schemaParts.ops(DEFAULT_OPS_PORT),
    log: schemaParts.log,
  },
} as const;

const validator = compileConfig<AgentConfig>(AGENT_CONFIG_SCHEMA);

/** Tailscale, Twingate, ZPA and Cloudflare hand out addresses from here: never overlap it. */
const CGNAT = parseCidr('100.64.0.0/10');

export function checkAgentConfig(data: unknown, source = 'config'): AgentConfig {
  const c = validator.check(data, source);
  const problems: string[] = [];
  let vin;
  try {
    vin = parseCidr(c.vinRange);
  } catch (e) {
    problems.push(`vinRange: expected a.b.c.d/n, got "${c.vinRange}" (${(e as Error).message})`);
  }
  if (vin) {
    if (vin.prefix < 8 || vin.prefix > 28)
      problems.push(`vinRange: expected a prefix from /8 to /28, got /${vin.prefix}`);
    const overlaps = vin.first <= CGNAT.last && CGNAT.first <= vin.last;
    if (overlaps)
      problems.push(
        `vinRange: expected no overlap with 100.64.0.0/10 (used by other remote-access products), got "${c.vinRange}"`,
      );
  }
  if (problems.length) throw new ConfigError(source, problems);
  return c;
}

export function loadAgentConfig(file: string): AgentConfig {
  return checkAgentConfig(validator.load(file), file);
}
