// Peer: OpenVPN 2.6 (Debian's), UDP, AES-256-GCM data channel, in userspace (`--disable-dco`:
// this kernel has no ovpn-dco module, and the peer must be the same on every machine). A
// point-to-point TLS setup: a CA, a server and a client certificate made with openssl at run time
// (EC P-256), the server on the gateway host (UDP 1194, outside GSRA's reserved range), the client
// on en1 behind the home NAT. en1 reaches in1's address `target` through the tunnel; in1 answers
// through its default route (the gateway), which routes the tunnel's client address back into it.
import { join } from 'node:path';
import { ADDR, type Lab } from '../lab/lab.ts';
import { run, waitFor, type Proc } from '../lab/exec.ts';
import { linkBytes } from './path-check.ts';
import { waitTunnelUp } from './tunnel-up.ts';

export const OVPN_PORT = 1194;
const OV_GW = '10.98.0.1';
const OV_EN = '10.98.0.2';
const DEV = 'ovpnb0';

export interface OpenVpn {
  /** rx + tx bytes of en1's tun device: only what went through OpenVPN. */
  counter(): Promise<number>;
  /** The data channel cipher OpenVPN's log says it uses. */
  cipher: string;
}

async function makePki(dir: string): Promise<void> {
  const ossl = (args: string[]) => run(['openssl', ...args], { cwd: dir, timeoutMs: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ossl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    '/CN=gsra-bench-ca',
    '-days',
    '2',
  ]);
  for (const h of ['gw', 'en']) {
    await ossl(['req', ...ec, '-keyout', `${h}.key`, '-out', `${h}.csr`, '-subj', `/CN=gsra-bench-${h}`]);
    await ossl([
      'x509',
      '-req',
      '-in',
      `${h}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${h}.crt`,
      '-days',
      '2',
    ]);
  }
}

export async function startOpenVpn(lab: Lab, target: string): Promise<OpenVpn> {
  const dir = join(lab.dir, 'openvpn');
  await run(['mkdir', '-p', dir]);
  await makePki(dir);
  const common = (h: string) => [
    'openvpn',
    '--dev',
    DEV,
    '--dev-type',
    'tun',
    '--proto',
    'udp',
    '--ca',
    join(dir, 'ca.crt'),
    '--cert',
    join(dir, `${h}.crt`),
    '--key',
    join(dir, `${h}.key`),
    '--data-ciphers',
    'AES-256-GCM',
    '--disable-dco',
    '--verb',
    '3',
  ];
  const gw = lab.spawn('gw', 'openvpn', [
    ...common('gw'),
    '--tls-server',
    '--dh',
    'none',
    '--lport',
    String(OVPN_PORT),
    '--ifconfig',
    OV_GW,
    OV_EN,
  ]);
  const en = lab.spawn('en1', 'openvpn', [
    ...common('en'),
    '--tls-client',
    '--remote',
    ADDR.gwWan,
    String(OVPN_PORT),
    '--nobind',
    '--ifconfig',
    OV_EN,
    OV_GW,
    '--route',
    target,
    '255.255.255.255',
    OV_GW,
  ]);
  const ready = (p: Proc, where: string) =>
    waitFor(
      `OpenVPN on ${where} to complete its initialization`,
      () => {
        if (!p.running) throw new Error(`openvpn on ${where} exited: ${p.log.slice(-1500)}`);
        return p.log.includes('Initialization Sequence Completed');
      },
      20_000,
      100,
    );
  await Promise.all([ready(gw, 'the gateway'), ready(en, 'en1')]);
  await waitTunnelUp(lab, 'OpenVPN', target);
  const cipher = /Data Channel: cipher '([^']+)'/.exec(en.log)?.[1] ?? 'unknown';
  if (cipher !== 'AES-256-GCM') throw new Error(`OpenVPN negotiated data cipher ${cipher}, not AES-256-GCM`);
  const stat = (f: string) => `/sys/class/net/${DEV}/statistics/${f}`;
  return {
    cipher,
    counter: async () =>
      linkBytes(
        (await lab.exec('en1', ['cat', stat('rx_bytes'), stat('tx_bytes')], { timeoutMs: 5000 })).stdout,
      ),
  };
}
