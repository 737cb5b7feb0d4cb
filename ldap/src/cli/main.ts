// gsra-admin: the command-line tool IT uses to manage GSRA groups in LDAP (OpenLDAP or AD).
// Connection settings come from flags, then environment variables, then a JSON config file;
// the password only from the environment or a file, never from the command line.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compileConfig, ConfigError, createLogger } from '@gsra/common';
import { DirectoryAdmin } from '../admin.ts';
import { DirectoryError } from '../errors.ts';
import type { Flavor } from '../schema.ts';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export interface AdminConfig {
  url: string;
  caFile: string;
  startTls?: boolean;
  baseDn: string;
  groupsDn?: string;
  flavor?: Flavor;
  bindDn: string;
  passwordFile?: string;
  connectTimeoutMs?: number;
  timeoutMs?: number;
  /** Default grace period of rotate-key, in seconds (default 3600). */
  keyGraceSeconds?: number;
  upnSuffix?: string;
}

const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string', pattern: '^ldaps?://' },
    caFile: { type: 'string', minLength: 1 },
    startTls: { type: 'boolean' },
    baseDn: { type: 'string', minLength: 1 },
    groupsDn: { type: 'string', minLength: 1 },
    flavor: { type: 'string', enum: ['openldap', 'ad'] },
    bindDn: { type: 'string', minLength: 1 },
    passwordFile: { type: 'string', minLength: 1 },
    connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 120000 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 600000 },
    keyGraceSeconds: { type: 'integer', minimum: 0 },
    upnSuffix: { type: 'string', minLength: 1 },
  },
};
const fileConfig = compileConfig<Partial<AdminConfig>>(configSchema);

class UsageError extends Error {}

interface Command {
  args: string[];
  summary: string;
  details?: string;
  options?: Record<string, { type: 'string' | 'boolean'; help: string }>;
}

const COMMANDS: Record<string, Command> = {
  'create-group': {
    args: ['<group>'],
    summary: 'create a GSRA group with a fresh group key (version 1)',
    options: {
      description: { type: 'string', help: 'description stored on the group' },
      'no-key': { type: 'boolean', help: 'create it without a key (rotate-key sets one later)' },
    },
  },
  'delete-group': {
    args: ['<group>'],
    summary: 'delete a GSRA group (its users and hosts lose access at once)',
  },
  'add-user': {
    args: ['<group>', '<user>'],
    summary: 'add a user to a group',
    details: '<user> is a uid, mail/userPrincipalName, DOMAIN\\name (AD) or a DN.',
  },
  'remove-user': { args: ['<group>', '<user>'], summary: 'remove a user from a group' },
  'add-host': {
    args: ['<group>', '<dns-name>', '<address>'],
    summary: 'add an internal host (IN) to a group',
    details: 'Example: gsra-admin add-host sales intra1.corp.example 10.0.0.11',
  },
  'remove-host': { args: ['<group>', '<dns-name|address>'], summary: 'remove an internal host from a group' },
  'rotate-key': {
    args: ['<group>'],
    summary: 'give a group a new key; the previous one stays valid for the grace period',
    options: {
      grace: {
        type: 'string',
        help: 'grace period: 90s, 30m, 1h, 2d or seconds (default: config keyGraceSeconds, else 1h)',
      },
    },
  },
  'set-secret': {
    args: ['<user>'],
    summary: "set a user's GSRA secret (32 random bytes; never printed)",
    options: {
      'secret-file': {
        type: 'string',
        help: 'read the secret (raw bytes, at least 16) from this file instead',
      },
    },
  },
  'who-can-reach': {
    args: ['<host>'],
    summary: 'list the groups and users that may reach a host (DNS name or address)',
  },
  'what-can': { args: ['<user>'], summary: 'list the groups of a user and the hosts they may reach' },
  'list-groups': { args: [], summary: 'list every GSRA group with its hosts, members and key version' },
};

const COMMON_HELP = `Connection (flag / environment variable / config-file key):
  --config <file>        GSRA_ADMIN_CONFIG        JSON file with the keys below
  --url <url>            GSRA_LDAP_URL            url         ldaps://ldap.corp.example:636 or ldap://...:389 with --starttls
  --ca-file <file>       GSRA_LDAP_CA_FILE        caFile      CA certificate (PEM) that issued the server certificate
  --starttls             GSRA_LDAP_STARTTLS=1     startTls
  --base-dn <dn>         GSRA_LDAP_BASE_DN        baseDn      e.g. dc=corp,dc=example
  --groups-dn <dn>       GSRA_LDAP_GROUPS_DN      groupsDn    where GSRA groups live (default: ou=groups,<base> on OpenLDAP)
  --flavor <f>           GSRA_LDAP_FLAVOR         flavor      openldap (default) or ad
  --bind-dn <dn>         GSRA_LDAP_BIND_DN        bindDn      admin account (AD: also user@domain or DOMAIN\\user)
  --password-file <file> GSRA_LDAP_PASSWORD_FILE  passwordFile
                         GSRA_LDAP_PASSWORD       (the password itself; there is no password flag)
  --timeout-ms <n>       GSRA_LDAP_TIMEOUT_MS     timeoutMs   per operation (default 10000); connect: connectTimeoutMs (5000)
Output:
  --json                 machine-readable JSON on stdout (errors too: {"error":{"code","message"}})
  -h, --help             help`;

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${[c.args.join(' '), '-', c.summary].filter(Boolean).join(' ')}`,
  );
  return `gsra-admin: manage GSRA groups, hosts, keys and user secrets in LDAP

Usage: gsra-admin <command> [arguments] [options]

Commands:
${lines.join('\n')}

Run "gsra-admin <command> --help" for the options of one command.

${COMMON_HELP}
`;
}

function commandHelp(name: string): string {
  const c = COMMANDS[name] as Command;
  const opts = Object.entries(c.options ?? {}).map(
    ([o, d]) => `  --${o}${d.type === 'string' ? ' <value>' : ''}  ${d.help}`,
  );
  return `gsra-admin ${name} ${c.args.join(' ')}

${c.summary}.${c.details ? `\n${c.details}` : ''}
${opts.length ? `\nOptions:\n${opts.join('\n')}\n` : ''}
${COMMON_HELP}
`;
}

/** Parse "90s", "30m", "1h", "2d" or a number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)\s*([smhd]?)$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid duration "${s}": use e.g. 90s, 30m, 1h, 2d or a number of seconds`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  return n * (unit === 'm' ? 60 : unit === 'h' ? 3600 : unit === 'd' ? 86400 : 1);
}

function resolveConfig(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv) {
  const file = (values.config as string | undefined) ?? env.GSRA_ADMIN_CONFIG;
  const fromFile: Partial<AdminConfig> = file ? fileConfig.load(file) : {};
  const pick = (flag: string, envName: string, key: keyof AdminConfig): string | undefined =>
    (values[flag] as string | undefined) ?? env[envName] ?? (fromFile[key] as string | undefined);
  const url = pick('url', 'GSRA_LDAP_URL', 'url');
  const caFile = pick('ca-file', 'GSRA_LDAP_CA_FILE', 'caFile');
  const baseDn = pick('base-dn', 'GSRA_LDAP_BASE_DN', 'baseDn');
  const bindDn = pick('bind-dn', 'GSRA_LDAP_BIND_DN', 'bindDn');
  const flavor = (pick('flavor', 'GSRA_LDAP_FLAVOR', 'flavor') ?? 'openldap') as Flavor;
  const missing = [
    ['url', '--url / GSRA_LDAP_URL', url],
    ['caFile', '--ca-file / GSRA_LDAP_CA_FILE', caFile],
    ['baseDn', '--base-dn / GSRA_LDAP_BASE_DN', baseDn],
    ['bindDn', '--bind-dn / GSRA_LDAP_BIND_DN', bindDn],
  ]
    .filter(([, , v]) => !v)
    .map(([k, how]) => `${k} (${how})`);
  if (missing.length) throw new UsageError(`missing connection settings: ${missing.join(', ')}`);
  if (flavor !== 'openldap' && flavor !== 'ad')
    throw new UsageError(`flavor must be openldap or ad, got "${flavor}"`);
  let password = env.GSRA_LDAP_PASSWORD;
  const pwFile = pick('password-file', 'GSRA_LDAP_PASSWORD_FILE', 'passwordFile');
  if (pwFile) {
    try {
      password = readFileSync(pwFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new UsageError(`cannot read the password file ${pwFile}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  if (!password) {
    throw new UsageError(
      'no password: set GSRA_LDAP_PASSWORD or give --password-file / GSRA_LDAP_PASSWORD_FILE',
    );
  }
  const startTls =
    values.starttls === true ||
    /^(1|true|yes)$/i.test(env.GSRA_LDAP_STARTTLS ?? '') ||
    (values.starttls === undefined && fromFile.startTls === true);
  const timeoutStr = pick('timeout-ms', 'GSRA_LDAP_TIMEOUT_MS', 'timeoutMs');
  const groupsDn =
    pick('groups-dn', 'GSRA_LDAP_GROUPS_DN', 'groupsDn') ??
    (flavor === 'openldap' ? `ou=groups,${baseDn}` : baseDn);
  return {
    url: url as string,
    caFile: caFile as string,
    startTls,
    baseDn: baseDn as string,
    groupsDn: groupsDn as string,
    flavor,
    bindDn: bindDn as string,
    password,
    timeoutMs: timeoutStr ? Number(timeoutStr) : (fromFile.timeoutMs ?? 10000),
    connectTimeoutMs: fromFile.connectTimeoutMs ?? 5000,
    keyGraceSeconds: fromFile.keyGraceSeconds ?? 3600,
    upnSuffix: fromFile.upnSuffix,
  };
}

function hostsText(hosts: { name: string; address: string }[]): string {
  return hosts.length ? hosts.map((h) => `${h.name} (${h.address})`).join(', ') : '(none)';
}

/** Run gsra-admin with `argv` (without node and script). Returns the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  const json = argv.includes('--json');
  const fail = (code: string, message: string, exit: number): number => {
    if (json) io.stdout(JSON.stringify({ error: { code, message } }) + '\n');
    else io.stderr(`gsra-admin: ${message}\n`);
    return exit;
  };
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const sub = name === 'help' ? rest[0] : undefined;
    io.stdout(sub && COMMANDS[sub] ? commandHelp(sub) : usage());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) return fail('usage', `unknown command "${name}"; run gsra-admin --help`, 2);

  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    url: { type: 'string' },
    'ca-file': { type: 'string' },
    starttls: { type: 'boolean' },
    'base-dn': { type: 'string' },
    'groups-dn': { type: 'string' },
    flavor: { type: 'string' },
    'bind-dn': { type: 'string' },
    'password-file': { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [o, d] of Object.entries(cmd.options ?? {})) options[o] = { type: d.type };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true }) as {
      values: Record<string, string | boolean | undefined>;
      positionals: string[];
    });
  } catch (err) {
    return fail('usage', `${(err as Error).message}; run gsra-admin ${name} --help`, 2);
  }
  if (values.help) {
    io.stdout(commandHelp(name));
    return 0;
  }
  if (positionals.length !== cmd.args.length) {
    return fail(
      'usage',
      `${name} takes ${cmd.args.length} argument(s): ${cmd.args.join(' ') || '(none)'}; run gsra-admin ${name} --help`,
      2,
    );
  }

  let admin: DirectoryAdmin | undefined;
  try {
    const cfg = resolveConfig(values, io.env);
    admin = new DirectoryAdmin({
      url: cfg.url,
      caFile: cfg.caFile,
      startTls: cfg.startTls,
      baseDn: cfg.baseDn,
      groupsDn: cfg.groupsDn,
      flavor: cfg.flavor,
      connectTimeoutMs: cfg.connectTimeoutMs,
      timeoutMs: cfg.timeoutMs,
      ...(cfg.upnSuffix ? { upnSuffix: cfg.upnSuffix } : {}),
      logger: createLogger('gsra-admin', { level: 'warn' }),
    });
    await admin.bindService(cfg.bindDn, cfg.password);
    const out = (obj: unknown, text: string) =>
      io.stdout(json ? JSON.stringify(obj, null, 2) + '\n' : text + '\n');
    const [a0, a1, a2] = positionals as [string, string, string];
    switch (name) {
      case 'create-group': {
        const g = await admin.createGroup(a0, {
          withKey: values['no-key'] !== true,
          ...(typeof values.description === 'string' ? { description: values.description } : {}),
        });
        const v = g.keys[0]?.version;
        out(
          { group: g.name, dn: g.dn, keyVersion: v ?? null },
          `created group ${g.name} (${g.dn})${v ? `, key version ${v}` : ', no key yet'}`,
        );
        break;
      }
      case 'delete-group':
        await admin.deleteGroup(a0);
        out({ group: a0, deleted: true }, `deleted group ${a0}`);
        break;
      case 'add-user': {
        const u = await admin.addUser(a0, a1);
        out({ group: a0, user: u.dn, added: true }, `added ${u.uid ?? u.dn} (${u.dn}) to ${a0}`);
        break;
      }
      case 'remove-user': {
        const u = await admin.removeUser(a0, a1);
        out({ group: a0, user: u.dn, removed: true }, `removed ${u.uid ?? u.dn} (${u.dn}) from ${a0}`);
        break;
      }
      case 'add-host': {
        const h = await admin.addHost(a0, { name: a1, address: a2 });
        out({ group: a0, host: h, added: true }, `added host ${h.name} (${h.address}) to ${a0}`);
        break;
      }
      case 'remove-host': {
        const hs = await admin.removeHost(a0, a1);
        out({ group: a0, hosts: hs, removed: true }, `removed ${hostsText(hs)} from ${a0}`);
        break;
      }
      case 'rotate-key': {
        const grace = typeof values.grace === 'string' ? parseDuration(values.grace) : cfg.keyGraceSeconds;
        const r = await admin.rotateKey(a0, grace);
        out(
          {
            group: r.group,
            version: r.version,
            rotatedAt: r.rotatedAt.toISOString(),
            previous: r.previous
              ? { version: r.previous.version, notAfter: r.previous.notAfter.toISOString() }
              : null,
          },
          `rotated the key of ${r.group}: now version ${r.version}` +
            (r.previous
              ? `; version ${r.previous.version} stays valid until ${r.previous.notAfter.toISOString()}`
              : ''),
        );
        break;
      }
      case 'set-secret': {
        let secret: Buffer | undefined;
        if (typeof values['secret-file'] === 'string') {
          try {
            secret = readFileSync(values['secret-file']);
          } catch (err) {
            throw new UsageError(
              `cannot read ${values['secret-file']}: ${(err as NodeJS.ErrnoException).code}`,
            );
          }
        }
        const u = await admin.setUserSecret(a0, secret);
        out({ user: u.dn, secretSet: true }, `set a new GSRA secret for ${u.uid ?? u.dn} (${u.dn})`);
        break;
      }
      case 'who-can-reach': {
        const r = await admin.whoCanReach(a0);
        out(
          { host: a0, groups: r },
          r.length
            ? r
                .map(
                  (e) =>
                    `${e.group} (${hostsText(e.hosts)}): ${e.members.map((m) => m.uid ?? m.dn).join(', ') || '(no members)'}`,
                )
                .join('\n')
            : `no GSRA group lists ${a0}`,
        );
        break;
      }
      case 'what-can': {
        const r = await admin.whatCan(a0);
        out(
          r,
          r.groups.length
            ? `${r.user.uid ?? r.user.dn} (${r.user.dn}):\n` +
                r.groups.map((g) => `  ${g.name}: ${hostsText(g.hosts)}`).join('\n')
            : `${r.user.uid ?? r.user.dn} (${r.user.dn}) is in no GSRA group`,
        );
        break;
      }
      case 'list-groups': {
        const gs = await admin.allGroups();
        const view = gs.map((g) => ({
          name: g.name,
          dn: g.dn,
          hosts: g.hosts,
          members: g.members,
          keyVersion: g.keys[0]?.version ?? null,
          keyRotatedAt: g.keyRotatedAt?.toISOString() ?? null,
          previousKey: g.keys[1]
            ? { version: g.keys[1].version, notAfter: g.keys[1].notAfter?.toISOString() }
            : null,
        }));
        out(
          { groups: view },
          view.length
            ? view
                .map(
                  (g) =>
                    `${g.name}: key v${g.keyVersion ?? '-'}${g.previousKey ? ` (v${g.previousKey.version} until ${g.previousKey.notAfter})` : ''}; hosts ${hostsText(g.hosts)}; members ${g.members.join('; ') || '(none)'}`,
                )
                .join('\n')
            : 'no GSRA groups',
        );
        break;
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return fail('usage', err.message, 2);
    if (err instanceof ConfigError) return fail('config', err.message, 2);
    if (err instanceof DirectoryError) return fail(err.code, err.message, 1);
    return fail('internal', (err as Error).message ?? String(err), 1);
  } finally {
    await admin?.close();
  }
}
