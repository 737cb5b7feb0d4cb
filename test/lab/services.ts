// Real servers and tools inside the lab: HTTP and UDP echo (small Node programs), vsftpd in
// passive mode, OpenSSH's sshd, iperf3, and tcpdump captures. Each start* waits until the server
// answers and returns a handle; everything is stopped at the lab's teardown.
import { mkdirSync, writeFileSync, readFileSync, existsSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, run, type Proc } from './exec.ts';
import { readPcap, type IpPacket } from './pcap.ts';
import { ADDR, type HostName, type Lab } from './lab.ts';

const SERVERS = join(dirname(fileURLToPath(import.meta.url)), 'servers');

function addrOf(host: HostName): string {
  const a = (ADDR as Record<string, string>)[host];
  if (!a) throw new Error(`${host} has no single address`);
  return a;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Write a file of `size` random bytes (in 1 MiB chunks); returns its sha256. */
export function makeRandomFile(file: string, size: number): string {
  const h = createHash('sha256');
  const chunks: Buffer[] = [];
  for (let left = size; left > 0; left -= 1 << 20) {
    const c = randomBytes(Math.min(left, 1 << 20));
    h.update(c);
    chunks.push(c);
  }
  writeFileSync(file, Buffer.concat(chunks));
  return h.digest('hex');
}

export interface WebServer {
  proc: Proc;
  url: string;
  root: string;
}

/** Static HTTP server on host:port serving `root` (created, with an index.html naming the host). */
export async function startHttp(lab: Lab, host: HostName, port = 80): Promise<WebServer> {
  const root = join(lab.dir, `www-${host}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'index.html'), `<h1>hello from ${host}</h1>\n`);
  const addr = addrOf(host);
  const proc = lab.spawn(host, 'http', ['node', join(SERVERS, 'http-server.mjs'), addr, String(port), root]);
  await waitFor(`HTTP on ${host}`, () => proc.log.includes('listening') || !proc.running);
  if (!proc.running) throw new Error(`HTTP server on ${host} died: ${proc.log}`);
  return { proc, url: `http://${addr}:${port}/`, root };
}

/** UDP reflector on addr:port in host (addr defaults to the host's address) (answers "<payload> from <addr>:<port>"). */
export async function startUdpEcho(
  lab: Lab,
  host: HostName,
  port: number,
  addr = addrOf(host),
): Promise<Proc> {
  const proc = lab.spawn(host, `udp-echo-${port}`, [
    'node',
    join(SERVERS, 'udp-echo.mjs'),
    addr,
    String(port),
  ]);
  await waitFor(`UDP echo on ${host}`, () => proc.log.includes('listening') || !proc.running);
  if (!proc.running) throw new Error(`UDP echo on ${host} died: ${proc.log}`);
  return proc;
}

/** Send one datagram from `sport` to each destination; returns what each one answered (or null). */
export async function udpProbe(
  lab: Lab,
  host: HostName,
  sport: number,
  dests: string[],
): Promise<{ to: string; reply: string | null }[]> {
  const r = await lab.exec(host, ['node', join(SERVERS, 'udp-probe.mjs'), String(sport), ...dests]);
  return JSON.parse(r.stdout) as { to: string; reply: string | null }[];
}

export interface FtpServer {
  proc: Proc;
  root: string;
  url: string;
  /** Passive-mode data ports the server uses. */
  pasvPorts: [number, number];
}

/** vsftpd on host, anonymous read-only, passive mode only. */
export async function startFtp(lab: Lab, host: HostName = 'in1'): Promise<FtpServer> {
  const base = join(lab.dir, `ftp-${host}`);
  const root = join(base, 'pub');
  const empty = join(base, 'empty');
  mkdirSync(root, { recursive: true });
  mkdirSync(empty, { recursive: true });
  const addr = addrOf(host);
  const pasvPorts: [number, number] = [30000, 30099];
  const conf = join(base, 'vsftpd.conf');
  writeFileSync(
    conf,
    [
      'listen=YES',
      'listen_ipv6=NO',
      `listen_address=${addr}`,
      'background=NO',
      'anonymous_enable=YES',
      'no_anon_password=YES',
      `anon_root=${root}`,
      'local_enable=NO',
      'write_enable=NO',
      'pasv_enable=YES',
      `pasv_min_port=${pasvPorts[0]}`,
      `pasv_max_port=${pasvPorts[1]}`,
      'port_enable=YES',
      'connect_from_port_20=NO',
      `secure_chroot_dir=${empty}`,
      'seccomp_sandbox=NO',
      'xferlog_enable=YES',
      `vsftpd_log_file=${join(base, 'vsftpd.log')}`,
      'dirmessage_enable=NO',
      'hide_ids=YES',
      '',
    ].join('\n'),
  );
  const proc = lab.spawn(host, 'vsftpd', ['vsftpd', conf]);
  await lab.waitTcp(host, addr, 21);
  return { proc, root, url: `ftp://${addr}/`, pasvPorts };
}

export interface SshServer {
  proc: Proc;
  /** Arguments for `ssh` that log in as root with this lab's key and trust this server's host key. */
  clientArgs: string[];
  addr: string;
}

/** OpenSSH sshd on host, key authentication only, with a client key made for this lab; `names` are trusted aliases. */
export async function startSshd(lab: Lab, host: HostName = 'in2', names: string[] = []): Promise<SshServer> {
  const base = join(lab.dir, `ssh-${host}`);
  mkdirSync(base, { recursive: true });
  const addr = addrOf(host);
  const hostKey = join(base, 'host_ed25519');
  const clientKey = join(base, 'client_ed25519');
  for (const k of [hostKey, clientKey]) {
    if (!existsSync(k)) await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k]);
  }
  writeFileSync(join(base, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
  // Trusted under its address and any DNS names the caller gives (e.g. intra2.corp.example).
  writeFileSync(
    join(base, 'known_hosts'),
    `${[addr, ...names].join(',')} ${readFileSync(`${hostKey}.pub`, 'utf8')}`,
  );
  mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory
  const conf = join(base, 'sshd_config');
  writeFileSync(
    conf,
    [
      `ListenAddress ${addr}`,
      'Port 22',
      `HostKey ${hostKey}`,
      `PidFile ${join(base, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(base, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  const proc = lab.spawn(host, 'sshd', ['/usr/sbin/sshd', '-D', '-e', '-f', conf]);
  await lab.waitTcp(host, addr, 22);
  const clientArgs = [
    '-i',
    clientKey,
    '-o',
    `UserKnownHostsFile=${join(base, 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
  ];
  return { proc, clientArgs, addr };
}

/** iperf3 server on host:5201. */
export async function startIperf(lab: Lab, host: HostName, port = 5201): Promise<Proc> {
  const addr = addrOf(host);
  const proc = lab.spawn(host, 'iperf3', ['iperf3', '-s', '-B', addr, '-p', String(port)]);
  await lab.waitTcp(host, addr, port);
  return proc;
}

export interface Capture {
  file: string;
  /** Stop tcpdump and return every IPv4 packet it saw. */
  stop(): Promise<IpPacket[]>;
}

/**
 * Whether process `pid` sleeps interruptibly (state S in /proc/<pid>/stat): for tcpdump, waiting
 * in poll() for the next packet. `ip netns exec` execs the command, so the child's pid is
 * tcpdump's. A process that is gone counts as waiting (there is nothing left to wait for).
 */
function waitingForPackets(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'S';
  } catch {
    return true;
  }
}

/** tcpdump on `iface` inside `node` (a host or a switch: 'inet' with iface 'br0' is the internet link). */
export async function startCapture(
  lab: Lab,
  node: Parameters<Lab['ns']>[0],
  iface: string,
  filter: string[] = [],
): Promise<Capture> {
  const file = join(lab.dir, `cap-${node}-${iface}-${Date.now()}.pcap`);
  const proc = lab.spawn(node, `tcpdump-${iface}`, [
    'tcpdump',
    '-i',
    iface,
    '-U',
    '-n',
    '-s',
    '0',
    '--immediate-mode',
    '-B',
    '32768', // KiB: a busy link must not lose packets, or a "nothing in clear" check proves nothing
    '-w',
    file,
    ...filter,
  ]);
  await waitFor(`tcpdump on ${node}/${iface}`, () => proc.log.includes('listening on') || !proc.running);
  if (!proc.running) throw new Error(`tcpdump on ${node}/${iface} failed: ${proc.log}`);
  return {
    file,
    async stop() {
      // tcpdump stops reading at the signal: whatever is still in the kernel's ring is lost. So
      // wait until it has caught up: the file has stopped growing (it is written per packet: -U)
      // and tcpdump sleeps, waiting for packets, for three checks in a row. A tcpdump that is
      // runnable but not running, or blocked writing (a busy machine, a slow disk), has not.
      let size = -1;
      let still = 0;
      for (let i = 0; i < 200 && still < 3; i++) {
        await new Promise((r) => setTimeout(r, 150));
        const now = existsSync(file) ? statSync(file).size : 0;
        still = now === size && waitingForPackets(proc.child.pid) ? still + 1 : 0;
        size = now;
      }
      await lab.stop(proc);
      return readPcap(file);
    },
  };
}
