// The commands an installation uses besides login/run/status:
//   selftest [--open-windivert] [--out FILE]   the engine with golden packets (selftest.ts)
//   windivert-guard [--config FILE]            the service host's guard filter, one line
//   configure --gateway A --zones z1,z2 --ldap-url U --ldap-ca FILE --base-dn DN [--flavor ad]
//             [--upn-suffix S] [--vin-range CIDR] [--config FILE]
//                                              writes a checked agent.json (the MSI runs this
//                                              with its properties; see docs/windows.md)
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '@gsra/common';
import { winDivertFilters } from '@gsra/native';
import { checkAgentConfig, loadAgentConfig } from './config.ts';
import type { CliIo } from './cli.ts';
import { selftest } from './selftest.ts';

export const INSTALL_COMMANDS = ['selftest', 'windivert-guard', 'configure'];

export const INSTALL_USAGE = `  selftest [--open-windivert] [--out FILE]
                        golden packets through this installation's engine (and WinDivert's filter compiler on Windows)
  configure --gateway ADDR --zones Z1,Z2 --ldap-url URL --ldap-ca FILE --base-dn DN [--flavor ad] [--upn-suffix S] [--vin-range CIDR]
                        write the agent config (the MSI runs this with its properties)
  windivert-guard       print the service host's WinDivert guard filter (Windows service host)
`;

type Values = Record<string, string | boolean | undefined>;

function emit(text: string, values: Values, io: CliIo): void {
  if (typeof values.out === 'string') writeFileSync(values.out, text);
  io.stdout(text);
}

export async function installCommand(cmd: string, values: Values, io: CliIo): Promise<number> {
  try {
    if (cmd === 'selftest') {
      const r = selftest({ openWinDivert: Boolean(values['open-windivert']) });
      emit(JSON.stringify(r) + '\n', values, io);
      if (!r.ok) io.stderr(`gsra-agent selftest: FAILED: ${r.failures.join('; ')}\n`);
      return r.ok ? 0 : 1;
    }
    if (cmd === 'windivert-guard') {
      const c = loadAgentConfig(values.config as string);
      const guard = winDivertFilters({
        vinNet: c.vinRange,
        ggr: c.gateway.address,
        ports: [c.gateway.ports.first, c.gateway.ports.last],
      }).find((h) => h.role === 'guard');
      emit(`${guard!.filter}\n`, values, io);
      return 0;
    }
    return configure(values, io);
  } catch (e) {
    io.stderr(`gsra-agent ${cmd}: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    return 1;
  }
}

function configure(values: Values, io: CliIo): number {
  const file = values.config as string;
  const need = ['gateway', 'zones', 'ldap-url', 'ldap-ca', 'base-dn'].filter(
    (k) => typeof values[k] !== 'string',
  );
  if (need.length) {
    io.stderr(`gsra-agent configure: missing ${need.map((k) => `--${k}`).join(', ')}\n`);
    return 2;
  }
  // The CA certificate is copied beside the config, so the config never points at a share.
  const ca = join(dirname(file), 'ldap-ca.pem');
  const raw: Record<string, unknown> = {
    gateway: { address: values.gateway },
    zones: String(values.zones)
      .split(',')
      .map((z) => z.trim())
      .filter(Boolean),
    ldap: {
      url: values['ldap-url'],
      caFile: ca,
      baseDn: values['base-dn'],
      ...(values.flavor ? { flavor: values.flavor } : {}),
      ...(values['upn-suffix'] ? { upnSuffix: values['upn-suffix'] } : {}),
    },
    ...(values['vin-range'] ? { vinRange: values['vin-range'] } : {}),
  };
  checkAgentConfig(structuredClone(raw), '--options');
  mkdirSync(dirname(file), { recursive: true });
  if (values['ldap-ca'] !== ca) copyFileSync(values['ldap-ca'] as string, ca);
  writeFileSync(file, JSON.stringify(raw, null, 2) + '\n');
  io.stdout(`gsra-agent: wrote ${file}\n`);
  return 0;
}
