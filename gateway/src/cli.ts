// gsra-gateway: run the GSRA router daemon, or ask a running one for its status.
//   gsra-gateway run --config /etc/gsra/gateway.json
//   gsra-gateway status [--ops 127.0.0.1:9464] [--flows] [--json]
//   gsra-gateway check-config --config /etc/gsra/gateway.json
//   gsra-gateway remove-rules --config /etc/gsra/gateway.json
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, serveUntilSignal } from '@gsra/common';
import { loadGatewayConfig } from './config.ts';
import { GatewayDaemon } from './daemon.ts';
import type { DataPlane } from './data-plane.ts';
import type { GatewayStatus } from './status.ts';
import { flowLines, summaryLines } from './status-text.ts';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const USAGE = `usage: gsra-gateway <command> [options]

commands:
  run --config FILE          run the gateway (SIGHUP: re-read LDAP; SIGTERM: stop; sessions, flows
                             and kernel rules stay for the next start: docs/reliability.md)
  status [--ops HOST:PORT]   show sessions, flows, reservations and counters of a running gateway
         [--flows]           (default ops address 127.0.0.1:9464); --flows: each live flow with the
         [--json]            audit record's fields (bytes and packets each way, start, duration)
  check-config --config FILE validate a config file and print every problem
  remove-rules --config FILE remove the gateway's kernel rules (decommissioning; the gateway is stopped)

options:
  --no-engine                run: negotiate only, install no packet engine (diagnostics)
  -h, --help                 this text
`;

/** Loads the native packet engine as the gateway's data plane (kept apart so status/check need no engine). */
export type DataPlaneFactory = (config: ReturnType<typeof loadGatewayConfig>) => Promise<DataPlane>;

export async function main(argv: string[], io: CliIo, dataPlane?: DataPlaneFactory): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        ops: { type: 'string' },
        json: { type: 'boolean' },
        flows: { type: 'boolean' },
        'no-engine': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    io.stderr(`gsra-gateway: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const cmd = positionals[0];
  if (values.help || !cmd) {
    (values.help ? io.stdout : io.stderr)(USAGE);
    return values.help ? 0 : 2;
  }
  switch (cmd) {
    case 'check-config':
    case 'remove-rules':
    case 'run': {
      if (!values.config) {
        io.stderr(`gsra-gateway ${cmd}: --config FILE is required\n`);
        return 2;
      }
      let config;
      try {
        config = loadGatewayConfig(values.config);
      } catch (e) {
        io.stderr(`gsra-gateway: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
        return 1;
      }
      if (cmd === 'check-config') {
        io.stdout(`${values.config}: ok\n`);
        return 0;
      }
      if (cmd === 'remove-rules') return removeGatewayRules(config, io);
      return run(config, io, values['no-engine'] ? undefined : (dataPlane ?? linuxDataPlane));
    }
    case 'status':
      return status(values.ops ?? '127.0.0.1:9464', Boolean(values.json), Boolean(values.flows), io);
    default:
      io.stderr(`gsra-gateway: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

/** The Linux data plane: the native engine behind NFQUEUE (loaded only when `run` needs it). */
const linuxDataPlane: DataPlaneFactory = async (c) => {
  const { LinuxDataPlane } = await import('./data-plane-linux.ts');
  return new LinuxDataPlane({
    ggr: c.publicAddress,
    pgr: c.privateAddress,
    ports: { first: c.ports.first, last: c.ports.last },
    queues: c.engine.queues,
    queuesPerSide: c.engine.queuesPerSide,
    spinUs: c.engine.spinUs,
    gso: c.engine.gso,
    verdictThread: c.engine.verdictThread,
    interfaces: [c.wanInterface, c.lanInterface],
    algPorts: c.ftp.ports,
  });
};

/** Removes the kernel rules a stopped gateway left in place (they keep the door closed meanwhile). */
async function removeGatewayRules(config: ReturnType<typeof loadGatewayConfig>, io: CliIo): Promise<number> {
  const { gatewayRules, queueLayout, removeRules } = await import('@gsra/native');
  const [inQueue, outQueue] = queueLayout(config.engine.queues, config.engine.queuesPerSide);
  const ports = `${config.ports.first}:${config.ports.last}`;
  removeRules(
    gatewayRules({
      ggr: config.publicAddress,
      pgr: config.privateAddress,
      ports,
      inQueue,
      outQueue,
      wan: config.wanInterface,
      lan: config.lanInterface,
    }),
  );
  io.stdout('gsra-gateway: kernel rules removed\n');
  return 0;
}

async function run(
  config: ReturnType<typeof loadGatewayConfig>,
  io: CliIo,
  dataPlane?: DataPlaneFactory,
): Promise<number> {
  const logger = createLogger('gateway', { level: config.log.level });
  let daemon: GatewayDaemon;
  try {
    daemon = new GatewayDaemon(config, {
      logger,
      dataPlane: dataPlane ? await dataPlane(config) : undefined,
    });
    await daemon.start();
  } catch (e) {
    logger.error('gateway failed to start', { reason: (e as Error).message });
    io.stderr(`gsra-gateway: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  return serveUntilSignal(daemon, logger);
}

async function status(ops: string, json: boolean, flows: boolean, io: CliIo): Promise<number> {
  let body: string;
  try {
    const res = await fetch(`http://${ops}/status`, { signal: AbortSignal.timeout(3000) });
    body = await res.text();
  } catch (e) {
    io.stderr(`gsra-gateway status: no gateway answers at ${ops} (${(e as Error).message})\n`);
    return 1;
  }
  const s = JSON.parse(body) as GatewayStatus;
  if (json) io.stdout(flows ? JSON.stringify(s.flows, null, 2) + '\n' : body);
  else io.stdout((flows ? flowLines(s.flows) : summaryLines(s)).join('\n') + '\n');
  return 0;
}
