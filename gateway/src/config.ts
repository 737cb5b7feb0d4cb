// gsra-gateway's configuration: a JSON file validated against this schema (errors read
// "path: expected X, got Y"). Defaults are filled in by the loader. See docs/gateway.md.
import { compileConfig, ConfigError, schemaParts, type EngineConfig } from '@gsra/common';
import { SYSLOG_FACILITIES, type SyslogConfig } from './syslog.ts';

export interface GatewayConfig {
  /** GGR: the gateway's public (internet) address; PGR: its LAN address. */
  publicAddress: string;
  privateAddress: string;
  /** Interfaces the engine hooks (internet side, LAN side). */
  wanInterface: string;
  lanInterface: string;
  control: {
    port: number;
    /** Agents send KEEPALIVE this often; it renews sessions, reservations and mappings. */
    keepaliveSec: number;
    /** An installed mapping ends this long after its last renewal. */
    mappingLifetimeSec: number;
    /** A session with no authenticated message for this long ends. */
    sessionIdleSec: number;
    /** HELLOs and AUTHs per second one source address may send (each also a burst of twice that). */
    perSourceRate: number;
    /** Answers per second to sources that have not shown they receive them (COOKIEs under a flood). */
    unprovenRate: number;
  };
  /**
   * Where the gateway keeps what must survive a restart (its reset key, the state journal and its
   * key); mode 0700.
   */
  stateDir: string;
  ports: {
    /** Range of ports t the gateway reserves on GGR for flows. */
    first: number;
    last: number;
    /** Seconds a reservation lives without being used or renewed. */
    reservationTtlSec: number;
    /** Most reserved ports one user (and one session) may hold at once. */
    perUser: number;
    /** Most reserved ports one EN public address may hold at once (spreads NAT'd users). */
    perSource: number;
    /**
     * After a TCP flow ended, its port is not handed out toward the same IN for this long
     * (the server may hold TIME_WAIT for PGR:t <-> PIN:d: 60 s on Linux); other INs get it at once.
     */
    timeWaitSec: number;
  };
  /** How the gateway keeps what a restart needs (sessions, reservations, flows): docs/reliability.md. */
  state: {
    /** The key that encrypts the journal (32 bytes, 0600; made on first start). Default stateDir/state.key. */
    keyFile?: string;
    /** fdatasync at most this long after a change (a power cut loses at most this much). */
    syncMs: number;
  };
  ldap: {
    url: string;
    caFile: string;
    baseDn: string;
    /** Where the GSRA groups live (subtree); default baseDn. */
    groupsDn?: string;
    flavor: 'openldap' | 'ad';
    /** AD: the agents' upnSuffix; a bare id agents send also names the user id@upnSuffix. */
    upnSuffix?: string;
    startTls: boolean;
    /** The gateways' service account. */
    bindDn: string;
    /** File holding the service account's password (never in the config itself). */
    passwordFile: string;
    /** Seconds between policy refreshes from LDAP (a removed user loses new flows within this). */
    refreshSec: number;
    connectTimeoutMs: number;
    timeoutMs: number;
  };
  /** What a refresh does when an account becomes disabled, locked or expired (docs/gateway.md). */
  offboarding: {
    /** Its live flows: 'cut' (default) ends them at that refresh; 'keep' lets them run out. */
    liveFlows: 'cut' | 'keep';
  };
  dns: {
    enabled: boolean;
    /** Zone whose public view the gateway answers: every known IN name -> GGR, NXDOMAIN otherwise. */
    zone: string;
    port: number;
    ttl: number;
  };
  ops: {
    /** Local address for /metrics (Prometheus), /healthz and /status. Never a public address. */
    listen: string;
    port: number;
    /** Serve the read-only status page at / (default true; docs/gateway.md "Status page"). */
    statusPage: boolean;
  };
  /** The per-flow audit (docs/gateway.md "Per-flow audit"): always logged; optionally to syslog too. */
  audit: {
    syslog?: SyslogConfig;
  };
  /** The packet engine's queues (schemaParts.engine); `queues` is [internet side, LAN side], and GSO is taken on the LAN side. */
  engine: EngineConfig;
  /** The FTP ALG (docs/gateway.md): passive replies rewritten to the VIN, data ports pre-reserved. */
  ftp: {
    /** Service ports of FTP control connections the ALG watches (empty: no ALG). */
    ports: number[];
  };
  log: { level: 'error' | 'warn' | 'info' | 'debug' };
}

const { ipv4, port } = schemaParts;

export const GATEWAY_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['publicAddress', 'privateAddress', 'wanInterface', 'lanInterface', 'ldap'],
  properties: {
    publicAddress: ipv4,
    privateAddress: ipv4,
    wanInterface: { type: 'string', minLength: 1, maxLength: 15 },
    lanInterface: { type: 'string', minLength: 1, maxLength: 15 },
    control: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        port: { ...port, default: 4430 },
        keepaliveSec: { type: 'integer', minimum: 1, maximum: 3600, default: 25 },
        mappingLifetimeSec: { type: 'integer', minimum: 2, maximum: 86400, default: 300 },
        sessionIdleSec: { type: 'integer', minimum: 3, maximum: 86400, default: 120 },
        perSourceRate: { type: 'integer', minimum: 1, maximum: 100000, default: 20 },
        unprovenRate: { type: 'integer', minimum: 1, maximum: 1000000, default: 200 },
      },
    },
    ports: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        first: { ...port, default: 40000 },
        last: { ...port, default: 59999 },
        reservationTtlSec: { type: 'integer', minimum: 5, maximum: 86400, default: 120 },
        perUser: { type: 'integer', minimum: 1, maximum: 65535, default: 2048 },
        perSource: { type: 'integer', minimum: 1, maximum: 65535, default: 8192 },
        timeWaitSec: { type: 'integer', minimum: 0, maximum: 600, default: 65 },
      },
    },
    state: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        keyFile: { type: 'string', minLength: 1 },
        syncMs: { type: 'integer', minimum: 0, maximum: 60000, default: 1000 },
      },
    },
    ldap: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'caFile', 'baseDn', 'bindDn', 'passwordFile'],
      properties: {
        url: { type: 'string', pattern: '^ldaps?://' },
        caFile: { type: 'string', minLength: 1 },
        baseDn: { type: 'string', minLength: 3 },
        groupsDn: { type: 'string', minLength: 3 },
        flavor: { type: 'string', enum: ['openldap', 'ad'], default: 'openldap' },
        upnSuffix: { type: 'string', pattern: '^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*$' },
        startTls: { type: 'boolean', default: false },
        bindDn: { type: 'string', minLength: 3 },
        passwordFile: { type: 'string', minLength: 1 },
        refreshSec: { type: 'integer', minimum: 1, maximum: 3600, default: 30 },
        connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 60000, default: 3000 },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 120000, default: 5000 },
      },
    },
    offboarding: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { liveFlows: { type: 'string', enum: ['cut', 'keep'], default: 'cut' } },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        zone: { type: 'string', default: 'corp.example' },
        port: { ...port, default: 53 },
        ttl: { type: 'integer', minimum: 0, maximum: 86400, default: 30 },
      },
    },
    stateDir: { type: 'string', minLength: 1, default: '/var/lib/gsra-gateway' },
    ops: {
      ...schemaParts.ops(9464),
      properties: { ...schemaParts.ops(9464).properties, statusPage: { type: 'boolean', default: true } },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        syslog: {
          type: 'object',
          additionalProperties: false,
          required: ['target'],
          properties: {
            target: { type: 'string', minLength: 1 },
            facility: { type: 'string', enum: SYSLOG_FACILITIES, default: 'authpriv' },
            format: { type: 'string', enum: ['rfc3164', 'rfc5424'], default: 'rfc3164' },
            tag: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,32}$', default: 'gsra-gateway' },
          },
        },
      },
    },
    engine: schemaParts.engine,
    ftp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        ports: { type: 'array', items: port, maxItems: 8, uniqueItems: true, default: [21] },
      },
    },
    log: schemaParts.log,
  },
} as const;

const SYSLOG_TARGET = /^(\/\S+|(udp|tcp):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/;

const validator = compileConfig<GatewayConfig>(GATEWAY_CONFIG_SCHEMA);

/** Validate a parsed config; throws ConfigError listing every problem. */
export function checkGatewayConfig(data: unknown, source = 'config'): GatewayConfig {
  const c = validator.check(data, source);
  const problems: string[] = [];
  if (c.ports.first > c.ports.last)
    problems.push(`ports.first: expected <= ports.last (${c.ports.last}), got ${c.ports.first}`);
  if (c.ports.first <= c.control.port && c.control.port <= c.ports.last) {
    problems.push(`control.port: expected outside ports.first..ports.last, got ${c.control.port}`);
  }
  if (c.control.keepaliveSec * 2 > c.control.mappingLifetimeSec) {
    problems.push(
      `control.mappingLifetimeSec: expected at least twice control.keepaliveSec (${c.control.keepaliveSec}), got ${c.control.mappingLifetimeSec}`,
    );
  }
  if (c.control.keepaliveSec * 2 > c.control.sessionIdleSec) {
    problems.push(
      `control.sessionIdleSec: expected at least twice control.keepaliveSec (${c.control.keepaliveSec}), got ${c.control.sessionIdleSec}`,
    );
  }
  if (!/^(127\.|::1$)/.test(c.ops.listen) && c.ops.listen !== c.privateAddress) {
    problems.push(`ops.listen: expected a loopback or LAN address, got "${c.ops.listen}"`);
  }
  const target = c.audit.syslog?.target;
  if (target !== undefined && !SYSLOG_TARGET.test(target)) {
    problems.push(
      `audit.syslog.target: expected a Unix socket path (/dev/log), udp://host:port or tcp://host:port, got "${target}"`,
    );
  }
  if (problems.length) {
    throw new ConfigError(source, problems);
  }
  return c;
}

export function loadGatewayConfig(file: string): GatewayConfig {
  return checkGatewayConfig(validator.load(file), file);
}
