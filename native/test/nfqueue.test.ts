// Real NFQUEUE tests in throwaway network namespaces: agent (EN) -- gateway -- server (IN).
// An engine on NFQUEUE runs in the agent and one in the gateway; UDP and TCP (300 KB each way)
// go through both and must arrive translated (the server sees PGR:t) and intact. Then the agent
// engine is killed with SIGKILL: traffic must stop (fail closed), nothing leaks untranslated.
// The namespaces, servers and engines are one fixture shared by the tests below, which run in
// order (each states one behaviour). Needs root (CAP_NET_ADMIN), iproute2, iptables and
// python3. Namespaces are always deleted.
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, 'fixtures', 'nfq-node.ts');
const id = `nq${process.pid}`;
const NS = { a: `${id}a`, g: `${id}g`, s: `${id}s` };
const cfg = {
  vinNet: '100.64.0.0/16',
  ggr: '192.168.77.1',
  pgr: '10.77.0.1',
  pin: '10.77.0.11',
  udpT: 20001,
  tcpT: 20002,
  // Four more TCP flows at once: their t spread over both queues of each side (queues.ts).
  tcpMore: [20003, 20004, 20005, 20006],
  keySeed: 5,
  // The gateway's interfaces: toward the agent (its internet side) and toward the server (its LAN).
  wan: `${id}ga`,
  lan: `${id}gs`,
};
const PEN = '192.168.77.2';
const VIN = '100.64.0.9';

const sh = (cmd: string, args: string[], timeout = 20_000) =>
  execFileSync(cmd, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
const nsx = (ns: string, args: string[], timeout?: number) =>
  sh('ip', ['netns', 'exec', ns, ...args], timeout);

const SERVER = String.raw`
import socket, threading, hashlib
def recvall(c, n):
    b = bytearray()
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x: break
        b += x
    return b
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7007))
    while True:
        d, a = s.recvfrom(65535); s.sendto(('%s:%d ' % a).encode() + d, a)
threading.Thread(target=udp, daemon=True).start()
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(('0.0.0.0', 7008)); l.listen(8)
print('up', flush=True)
while True:
    c, a = l.accept()
    n = int.from_bytes(recvall(c, 4), 'big'); data = recvall(c, n)
    c.sendall(('%s:%d %s\n' % (a[0], a[1], hashlib.sha256(data).hexdigest())).encode() + data)
    c.close()
`;

const CLIENT = String.raw`
import socket, sys, os, hashlib
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == 'send':
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'control', (host, port)); sys.exit(0)
if mode == 'refused':
    try:
        socket.create_connection((host, port), timeout=5); print('CONNECTED')
    except ConnectionRefusedError: print('REFUSED')
    except socket.timeout: print('TIMEOUT')
    sys.exit(0)
if mode == 'dns':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[4])); s.connect((host, port))
    s.send(bytes.fromhex('12340100000100000000000001610467737261047465737400') + b'\x00\x01\x00\x01')
    try: print(s.recv(2000)[12:].decode('latin1').replace('\x00', '.'))
    except socket.timeout: print('TIMEOUT')
    sys.exit(0)
if mode in ('udp', 'udpgso'):
    # One source port for both: the GSO burst reuses the flow the first datagram opened.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[4]))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 47007)); s.connect((host, port))
    if mode == 'udp':
        s.send(b'ping-gsra')
        try: print(s.recv(2000).decode())
        except socket.timeout: print('TIMEOUT')
    else:
        # UDP_SEGMENT (UDP GSO): one send of 3 x 500 bytes leaves the stack as one GSO packet.
        s.setsockopt(17, 103, 500); s.send(b'a' * 500 + b'b' * 500 + b'c' * 500)
        got = []
        try:
            while len(got) < 3:
                body = s.recv(2000).split(b' ', 1)[1]
                got.append(body[:1].decode() if len(body) == 500 and len(set(body)) == 1 else 'BAD')
        except socket.timeout: pass
        print(' '.join(got) or 'TIMEOUT')
else:
    data = os.urandom(int(sys.argv[4]))
    c = socket.create_connection((host, port), timeout=10)
    c.sendall(len(data).to_bytes(4, 'big') + data)
    buf = bytearray()
    while b'\n' not in buf:
        x = c.recv(65536)
        if not x: break
        buf += x
    line, rest = bytes(buf).split(b'\n', 1)
    rest = bytearray(rest)
    while len(rest) < len(data):
        x = c.recv(65536)
        if not x: break
        rest += x
    print(line.decode(), hashlib.sha256(data).hexdigest(), hashlib.sha256(rest).hexdigest())
`;

interface Node {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  waitFor(pred: (o: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

function startNode(ns: string, role: 'agent' | 'gateway'): Node {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', fixture, role], {
    env: { ...process.env, GSRA_NQ_CFG: JSON.stringify(cfg) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    pred: (o: Record<string, unknown>) => boolean;
    resolve: (o: Record<string, unknown>) => void;
  }[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(o);
    for (const w of [...waiters]) {
      if (w.pred(o)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(o);
      }
    }
  });
  return {
    proc,
    lines,
    waitFor(pred, ms = 15_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${role}: timed out waiting`)), ms);
        waiters.push({
          pred,
          resolve: (o) => {
            clearTimeout(timer);
            resolve(o);
          },
        });
      });
    },
  };
}

/** Packets counted by the raw-table rules of `chain` in `ns` whose line contains `mark`. */
function ruleCount(ns: string, chain: string, mark: string): number {
  const out = nsx(ns, ['iptables', '-w', '-t', 'raw', '-L', chain, '-v', '-x', '-n']);
  let n = 0;
  for (const line of out.split('\n')) {
    if (line.includes(mark)) n += Number(line.trim().split(/\s+/)[0]);
  }
  return n;
}
/** Packets counted by the leak-detecting rules in the gateway's raw PREROUTING. */
const leakCount = () => ruleCount(NS.g, 'PREROUTING', 'gsra-test-leak');
/** Every IPv4 packet from PEN that reached the gateway (translated or not). */
const fromAgentCount = () => ruleCount(NS.g, 'PREROUTING', 'gsra-test-from-agent');
/** Packets the agent's outbound rules handed to its NFQUEUEs (dropped by the kernel when no engine reads them). */
const agentQueuedCount = () => ruleCount(NS.a, 'OUTPUT', 'NFQUEUE num');
/** TCP segments a namespace's stack had to queue out of order (TcpExt TCPOFOQueue). */
function outOfOrder(ns: string): number {
  const lines = nsx(ns, ['cat', '/proc/net/netstat'])
    .split('\n')
    .filter((l) => l.startsWith('TcpExt:'));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  return Number(values![names!.indexOf('TCPOFOQueue')]);
}
/** The client, without blocking the test (to run several at once). */
const clientAsync = (args: string[]) =>
  new Promise<string>((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', NS.a, 'python3', '-c', CLIENT, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(p);
    let o = '';
    p.stdout!.on('data', (d: Buffer) => (o += d.toString()));
    p.on('exit', (code) =>
      code === 0 ? resolve(o.trim()) : reject(new Error(`client ${args.join(' ')}: exit ${code}`)),
    );
  });

/** Polls `pred` every 50 ms until it holds or `ms` pass; returns whether it held. */
async function until(pred: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (pred()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const children: ChildProcess[] = [];
const lab: { gw?: Node; agent?: Node; leaks: number } = { leaks: 0 };
const client = (args: string[], timeout?: number) =>
  nsx(NS.a, ['python3', '-c', CLIENT, ...args], timeout).trim();
/** The node's backend counters, asked now (not an earlier answer). */
const backendStats = async (node: Node) => {
  const n = node.lines.length;
  node.proc.stdin!.write('stats\n');
  const o = await node.waitFor((o) => o.stats !== undefined && node.lines.indexOf(o) >= n);
  return (o.stats as { backend: Record<string, number> }).backend;
};
const isEvent = (type: string) => (o: Record<string, unknown>) =>
  (o.event as { type?: string } | undefined)?.type === type;

t.teardown(() => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  for (const ns of Object.values(NS)) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      // not created
    }
  }
});

// The network: three namespaces, two veth pairs, the gateway forwarding, the leak detectors and
// the servers. The engines start in the second test, once the detectors were seen to work.
t.before(async () => {
  for (const ns of Object.values(NS)) {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const veth = (a: string, nsA: string, b: string, nsB: string) =>
    sh('ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
  veth(`${id}ag`, NS.a, `${id}ga`, NS.g);
  veth(`${id}gs`, NS.g, `${id}sg`, NS.s);
  const ipn = (ns: string, ...a: string[]) => sh('ip', ['-n', ns, ...a]);
  ipn(NS.a, 'addr', 'add', `${PEN}/24`, 'dev', `${id}ag`);
  ipn(NS.a, 'link', 'set', `${id}ag`, 'up');
  ipn(NS.a, 'route', 'add', cfg.vinNet, 'via', cfg.ggr);
  ipn(NS.g, 'addr', 'add', `${cfg.ggr}/24`, 'dev', `${id}ga`);
  ipn(NS.g, 'addr', 'add', `${cfg.pgr}/24`, 'dev', `${id}gs`);
  ipn(NS.g, 'link', 'set', `${id}ga`, 'up');
  ipn(NS.g, 'link', 'set', `${id}gs`, 'up');
  ipn(NS.s, 'addr', 'add', `${cfg.pin}/24`, 'dev', `${id}sg`);
  ipn(NS.s, 'link', 'set', `${id}sg`, 'up');
  ipn(NS.s, 'route', 'add', 'default', 'via', cfg.pgr);
  // The gateway forwards packets whose source is one of its own addresses (PGR / GGR).
  for (const k of [
    'net.ipv4.ip_forward=1',
    'net.ipv4.conf.all.accept_local=1',
    'net.ipv4.conf.all.rp_filter=2',
  ]) {
    nsx(NS.g, ['sysctl', '-qw', k]);
  }
  for (const dev of [`${id}ga`, `${id}gs`]) {
    nsx(NS.g, ['sysctl', '-qw', `net.ipv4.conf.${dev}.accept_local=1`]);
    nsx(NS.g, ['sysctl', '-qw', `net.ipv4.conf.${dev}.rp_filter=2`]);
  }
  // Counting rules at the top of the gateway's raw PREROUTING (no target: they only count).
  const counter = (comment: string, ...match: string[]) =>
    nsx(NS.g, [
      'iptables',
      '-w',
      '-t',
      'raw',
      '-I',
      'PREROUTING',
      ...match,
      '-m',
      'comment',
      '--comment',
      comment,
    ]);
  // Leak detectors: anything still addressed to the VIN range or to the service ports on the WAN.
  counter('gsra-test-leak', '-d', cfg.vinNet);
  counter('gsra-test-leak', '-i', `${id}ga`, '-p', 'udp', '--dport', '7007');
  counter('gsra-test-leak', '-i', `${id}ga`, '-p', 'tcp', '--dport', '7008');
  // Everything from the agent that reaches the gateway, to show that a dead queue passes nothing.
  counter('gsra-test-from-agent', '-i', `${id}ga`, '-s', PEN);

  // A "DNS server" on the gateway's WAN address (outside the reserved range: not translated).
  const dns = spawn(
    'ip',
    [
      'netns',
      'exec',
      NS.g,
      'python3',
      '-c',
      "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('" +
        cfg.ggr +
        "',53)); print('up',flush=True)\nwhile True:\n d,a=s.recvfrom(2000); s.sendto(d,a)",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(dns);
  await new Promise<void>((resolve) => dns.stdout!.once('data', () => resolve()));
  const server = spawn('ip', ['netns', 'exec', NS.s, 'python3', '-c', SERVER], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(server);
  await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
});

t.test('the leak detectors count a packet that reaches the gateway untranslated', async (t) => {
  // No engine and no rules yet: a datagram to a VIN leaves the agent as it is.
  client(['send', VIN, '7007']);
  t.ok(await until(() => leakCount() > 0), 'the control datagram was counted as a leak');
  lab.leaks = leakCount();
});

t.test('the agent installs its NFQUEUE rules, never with --queue-bypass', async (t) => {
  lab.gw = startNode(NS.g, 'gateway');
  children.push(lab.gw.proc);
  lab.agent = startNode(NS.a, 'agent');
  children.push(lab.agent.proc);
  await lab.gw.waitFor((o) => o.ready === true);
  await lab.agent.waitFor((o) => o.ready === true);
  t.match(nsx(NS.a, ['iptables', '-w', '-t', 'raw', '-S']), /NFQUEUE --queue-num 0/, 'agent rules installed');
  t.notMatch(nsx(NS.a, ['iptables', '-w', '-t', 'raw', '-S']), /queue-bypass/);
});

t.test('a UDP datagram to a VIN is held, released translated, bound and answered', async (t) => {
  const u = client(['udp', VIN, '7007', '5']);
  t.equal(u, `${cfg.pgr}:${cfg.udpT} ping-gsra`, 'the server saw PGR:t; the reply came back from VIN:7007');
  await lab.agent!.waitFor(isEvent('held'));
  const b = await lab.gw!.waitFor(isEvent('bound'));
  t.match(b.event, { type: 'bound', proto: 'udp', t: cfg.udpT, ghr: PEN, pin: cfg.pin, d: 7007 });
});

t.test('TCP carries 300 KB each way intact, and IN sees PGR:t', async (t) => {
  // Segments of a GSO stream, MSS clamped for the option.
  const tcpBytes = Number(process.env.GSRA_NQ_TCP_BYTES ?? 300_000);
  const t0 = process.hrtime.bigint();
  const tc = client(['tcp', VIN, '7008', String(tcpBytes)], 120_000).split(/\s+/);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  t.comment(
    `TCP ${tcpBytes} B each way in ${sec.toFixed(2)} s (${((2 * tcpBytes * 8) / sec / 1e6).toFixed(0)} Mbit/s incl. setup)`,
  );
  t.equal(tc[0]?.split(':')[0], cfg.pgr, 'TCP peer seen by the server is PGR');
  t.equal(tc[0]?.split(':')[1], String(cfg.tcpT));
  t.equal(tc[1], tc[2], 'upload intact (server sha256 = client sha256)');
  t.equal(tc[2], tc[3], 'download intact');
});

t.test('four TCP flows at once spread over both queues of each side, each kept in order', async (t) => {
  const queues = async (node: Node) => {
    const b = (await backendStats(node)) as unknown as { queues: { num: number; received: number }[] };
    return new Map(b.queues.map((q) => [q.num, q.received]));
  };
  const [gw0, ag0] = [await queues(lab.gw!), await queues(lab.agent!)];
  const ofo0 = [outOfOrder(NS.s), outOfOrder(NS.a)];
  const runs = await Promise.all([0, 1, 2, 3].map(() => clientAsync(['tcp', VIN, '7008', '200000'])));
  const seen = new Set<string>();
  for (const r of runs) {
    const [peer, up, upSeen, down] = r.split(/\s+/);
    t.equal(peer?.split(':')[0], cfg.pgr, 'the server saw PGR');
    seen.add(peer!.split(':')[1]!);
    t.equal(up, upSeen, 'upload intact');
    t.equal(upSeen, down, 'download intact');
  }
  t.same([...seen].sort(), cfg.tcpMore.map(String), 'each flow its own t');
  const [gw1, ag1] = [await queues(lab.gw!), await queues(lab.agent!)];
  const grew = (a: Map<number, number>, b: Map<number, number>, num: number) =>
    (b.get(num) ?? 0) - (a.get(num) ?? 0);
  t.comment(`gateway queues: ${JSON.stringify([...gw1])}; agent queues: ${JSON.stringify([...ag1])}`);
  // By t (low bits 3, 4, 5, 6: three flows on the first queue of each side, one on the second;
  // the LAN side takes GSO super-packets whole, so it counts fewer packets).
  for (const num of [0, 1, 8, 9])
    t.ok(grew(gw0, gw1, num) > 0, `gateway queue ${num} took ${grew(gw0, gw1, num)} packets`);
  for (const num of [8, 9])
    t.ok(grew(ag0, ag1, num) > 0, `agent in-queue ${num} took ${grew(ag0, ag1, num)} packets`);
  // A flow split over two queues (two threads) would be reordered now and then; pinned, never.
  t.same([outOfOrder(NS.s), outOfOrder(NS.a)], ofo0, 'no segment arrived out of order, either way');
});

t.test('nothing reached the gateway untranslated', async (t) => {
  t.equal(leakCount(), lab.leaks, 'the leak detectors counted nothing since the control datagram');
});

t.test('a DNS answer to a query for the zone is punted to TypeScript and comes back rewritten', async (t) => {
  const d = client(['dns', cfg.ggr, '53', '5']);
  t.ok(d.includes('\x01A\x04GSRA\x04TEST'), 'the punted answer was replaced by TypeScript (same length)');
});

t.test('a refused negotiation answers the held SYN with a RST', async (t) => {
  const refused = client(['refused', VIN, '9999']);
  t.equal(refused, 'REFUSED', 'the application got a RST (raw-socket injection)');
});

t.test('the gateway verified every packet and translated both ways', async (t) => {
  lab.gw!.proc.stdin!.write('stats\n');
  const st = (await lab.gw!.waitFor((o) => o.stats !== undefined)).stats as Record<string, number>;
  t.equal(st.verifyFailed, 0);
  t.ok(
    st.translatedIn! > 100 && st.translatedOut! > 100,
    `gateway translated ${st.translatedIn} in / ${st.translatedOut} out`,
  );
});

t.test('bulk TCP left both sending sides as GSO super-packets cut in user space', async (t) => {
  // The veths keep their default offloads, so the stacks of EN and IN hand GSO packets to the
  // out queues (NFQA_CFG_F_GSO); each was cut, protected per segment and sent with sendmmsg.
  for (const [name, node] of [
    ['agent', lab.agent!],
    ['gateway', lab.gw!],
  ] as const) {
    const b = await backendStats(node);
    t.comment(`${name}: ${JSON.stringify(b)}`);
    t.ok(b.gsoPackets! > 0, `${name}: ${b.gsoPackets} super-packets taken whole`);
    t.ok(b.gsoSegments! > b.gsoPackets!, `${name}: cut into ${b.gsoSegments} segments`);
    t.equal(b.sendErrors, 0, `${name}: no verdict or segment refused by the kernel`);
  }
});

t.test('a UDP GSO burst (not cut in user space) falls back to the kernel, losslessly', async (t) => {
  const before = await backendStats(lab.agent!);
  // The datagrams' boundaries are not in the packet, so the engine cannot cut it: F_GSO goes off
  // on the out queue and the packet goes through the hook again (NF_REPEAT), to come back as three.
  t.equal(client(['udpgso', VIN, '7007', '5']), 'a b c', 'three datagrams of 500 bytes, each echoed');
  const after = await backendStats(lab.agent!);
  t.equal(after.gsoFallbacks! - before.gsoFallbacks!, 1, 'one fallback for the burst');
  t.equal(after.sendErrors, 0);
});

t.test('the rules of a killed agent engine stay in place (fail closed)', async (t) => {
  // Crash the agent's engine: its rules stay, nobody reads the queue, the kernel drops.
  const agent = lab.agent!.proc;
  agent.kill('SIGKILL');
  await new Promise((r) => agent.once('exit', r));
  t.match(nsx(NS.a, ['iptables', '-w', '-t', 'raw', '-S']), /NFQUEUE/, 'rules survive the crash');
});

t.test('without the engine a UDP datagram is taken by the queue and goes no further', async (t) => {
  const [queued, fromAgent] = [agentQueuedCount(), fromAgentCount()];
  const after = client(['udp', VIN, '7007', '2']);
  t.equal(after, 'TIMEOUT', 'no answer without the engine');
  t.ok(agentQueuedCount() > queued, 'the datagram went to the unread queue');
  t.equal(fromAgentCount(), fromAgent, 'and never reached the gateway');
});

t.test('without the engine TCP cannot connect and nothing leaks', async (t) => {
  const [queued, fromAgent] = [agentQueuedCount(), fromAgentCount()];
  let tcpFailed = false;
  try {
    client(['tcp', VIN, '7008', '1000'], 20_000);
  } catch {
    tcpFailed = true;
  }
  t.ok(tcpFailed, 'TCP cannot connect without the engine');
  t.ok(agentQueuedCount() > queued, 'its SYNs went to the unread queue');
  t.equal(fromAgentCount(), fromAgent, 'none reached the gateway');
  t.equal(leakCount(), lab.leaks, 'and nothing leaked untranslated');
});

t.test('a clean stop removes the gateway rules', async (t) => {
  const gw = lab.gw!.proc;
  gw.stdin!.write('quit\n');
  await new Promise((r) => gw.once('exit', r));
  t.notMatch(nsx(NS.g, ['iptables', '-w', '-t', 'raw', '-S']), /NFQUEUE/, 'a clean stop removes the rules');
});
