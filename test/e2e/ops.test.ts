// The operator's view of a real gateway in the lab, during and after a real transfer: alice
// downloads a file of known size through GSRA while the status page (in headless Chromium),
// `gsra-gateway status --flows` and /status show her session and flow; when the flow ends, its
// audit line (in the log and in syslog) counts the bytes the transfer moved; and every metric the
// Grafana dashboard queries is on the gateway's /metrics. One lab for the whole file.
//
// The browser's screenshot of the page is kept in test/artifacts/status-page.png (git-ignored).
import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../lab/exec.ts';
import { makeRandomFile, sha256File } from '../lab/services.ts';
import { startGsraLab, GATEWAY_BIN, IN1, IN2 } from './gsra-lab.ts';
import { dashboardExpressions, exportedMetrics, metricNames } from '../../gateway/test/dashboard.ts';
import { unixDatagramReceiver } from '../../gateway/test/unix-dgram.ts';

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const OPS = 'http://127.0.0.1:9464';
/** The download: its size, and curl's rate limit (the transfer lasts about 14 s). */
const SIZE = 4 * 1024 * 1024;
const RATE = '300K';

// The syslog socket exists before the gateway starts, as /dev/log would.
const sockDir = mkdtempSync(join(tmpdir(), 'gsra-ops-'));
const sockPath = join(sockDir, 'syslog.sock');
const syslog = unixDatagramReceiver(sockPath);
await syslog.up;
const g = await startGsraLab({
  gatewayConfig: { audit: { syslog: { target: sockPath, facility: 'local3' } } },
});
t.teardown(async () => {
  syslog.stop();
  rmSync(sockDir, { recursive: true, force: true });
  await g.stop();
});
const lab = g.lab;
const alice = await g.startAgent('en1', 'alice');

/** GET on the gateway's ops endpoint, from the gateway's own host (it listens on loopback). */
async function ops(path: string): Promise<string> {
  return (await lab.exec('gw', ['curl', '-sS', '-m', '5', OPS + path])).stdout;
}
interface Flow {
  user: string;
  in: string;
  payloadToEn: number;
  bytesToEn: number;
  ghr: string | null;
}
const status = async () =>
  JSON.parse(await ops('/status')) as { flows: Flow[]; sessions: { user: string }[] };

/** Chromium as the lab's gateway host runs it (the page is on the gateway's loopback). */
async function chromium(args: string[]): Promise<string> {
  const profile = join(lab.dir, `chromium-${Date.now()}`);
  const r = await lab.exec(
    'gw',
    [
      'chromium',
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      // The page's script runs and its first fetch of ./status is answered within this budget.
      '--virtual-time-budget=4000',
      ...args,
      `${OPS}/`,
    ],
    { timeoutMs: 60_000 },
  );
  return r.stdout;
}

// alice is refused intra2 (dev) once, so the page has a refusal to show.
await lab.exec('en1', ['curl', '-sS', '-m', '5', `http://${IN2}/`], { allowFail: true });

// The transfer: a known file, at a bounded rate, with the exact request and response headers.
const want = makeRandomFile(join(g.web1.root, 'report.bin'), SIZE);
const out = join(lab.dir, 'report.out');
const headers = join(lab.dir, 'report.headers');
const transfer = lab.exec(
  'en1',
  [
    'curl',
    '-sS',
    '-v',
    '-m',
    '60',
    '--limit-rate',
    RATE,
    '-D',
    headers,
    '-o',
    out,
    `http://${IN1}/report.bin`,
  ],
  { timeoutMs: 70_000 },
);
await waitFor(
  'alice’s flow to carry data',
  async () => (await status()).flows.some((f) => f.user === 'alice' && f.payloadToEn > 256 * 1024),
  20_000,
  200,
);

t.test('during the transfer: /status has alice’s session and her flow with its bytes', async (t) => {
  const s = await status();
  t.match(s.sessions, [{ user: 'alice', group: 'sales' }]);
  const f = s.flows.find((x) => x.user === 'alice')!;
  t.match(f, { in: IN1, pin: '10.0.0.11', d: 80, proto: 'tcp', state: 'established', close: 'none' });
  t.match(f.ghr, /^\d+\.\d+\.\d+\.\d+:\d+$/, 'the PC’s public address GHR:m');
  t.ok(f.payloadToEn > 256 * 1024 && f.payloadToEn < SIZE + 1024, `${f.payloadToEn} B so far`);
});

t.test('during the transfer: gsra-gateway status --flows lists the flow and what it moved', async (t) => {
  const r = await lab.exec('gw', ['node', GATEWAY_BIN, 'status', '--flows']);
  const row = r.stdout.split('\n').find((l) => l.startsWith('alice'));
  t.ok(row, r.stdout);
  const cols = row!.split(/\s{2,}/);
  t.match(cols.slice(0, 5), ['alice', 'sales', IN1, '10.0.0.11:80', 'tcp']);
  t.ok(Number(cols[7]) > 256 * 1024, `payload to EN ${cols[7]}`);
});

t.test('during the transfer: the status page in Chromium shows alice’s session and flow', async (t) => {
  const dom = await chromium(['--dump-dom']);
  t.match(dom, /<body data-state="ready"/, 'the page’s script fetched ./status and rendered it');
  const table = (id: string) => new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(dom)?.[1] ?? '';
  t.match(table('sessions'), /<td>alice<\/td><td>sales<\/td>/);
  t.match(table('flows'), new RegExp(`<td>alice</td><td>sales</td><td>${IN1.replace(/\./g, '\\.')}<div`));
  t.match(table('flows'), /\d+(\.\d)? (KiB|MiB)<div class="sub">/, 'bytes to the PC, human-readable');
  t.match(table('flows'), /<td>established<\/td>/, 'the transfer is still running');
  t.match(table('refusals'), /<td>alice<\/td><td>sales<\/td><td>intra2\.corp\.example<\/td>.*not-in-group/);
  t.match(dom, /<span id="health" class="badge ok">healthy<\/span>/);

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(lab.dir, 'status-page.png');
  await chromium([`--screenshot=${shot}`, '--window-size=1400,1000', '--hide-scrollbars']);
  const png = readFileSync(shot);
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
  t.equal(png.readUInt32BE(16), 1400, '1400 px wide');
  t.ok(png.length > 20_000, `${png.length} bytes: more than a blank page`);
  copyFileSync(shot, join(ARTIFACTS, 'status-page.png'));
});

t.test('after the transfer: one audit line with the bytes it moved, in the log and in syslog', async (t) => {
  const r = await transfer;
  t.equal(sha256File(out), want, 'the file arrived intact');
  // The bytes each way, exactly: what curl sent (its request, "> " lines) and what it received
  // (the response headers as they came, -D, and the body).
  const request = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('> ') || l === '>' || l === '>\r')
    .reduce((n, l) => n + l.replace(/^> ?/, '').replace(/\r$/, '').length + 2, 0);
  const response = statSync(headers).size + SIZE;
  // The flow ends with alice's session (the agent logs out on SIGTERM); the engine saw the FINs.
  await alice.proc.stop('SIGTERM');
  const auditLine = () =>
    g.logLines(g.gatewayLog).find((l) => l.message === 'flow ended' && l.user === 'alice');
  await waitFor('the audit line', () => auditLine() !== undefined, 10_000);
  const audit = auditLine()!;
  t.match(audit, { group: 'sales', in: IN1, pin: '10.0.0.11', d: 80, proto: 'tcp', reason: 'fin' });
  // Tolerance: none below what the transfer moved; above it, at most 1 % plus one segment,
  // for segments a sender retransmitted (the engine protects each copy).
  const within = (got: number, exact: number) => got >= exact && got <= exact * 1.01 + 1460;
  t.ok(
    within(audit.payloadToEn as number, response),
    `payload to EN ${audit.payloadToEn}, moved ${response}`,
  );
  t.ok(within(audit.payloadToIn as number, request), `payload to IN ${audit.payloadToIn}, moved ${request}`);
  // Whole packets: 40 to 100 header bytes each (IP, TCP with timestamps, the MAC option).
  const { bytesToEn, packetsToEn } = audit as { bytesToEn: number; packetsToEn: number };
  const headerBytes = bytesToEn - (audit.payloadToEn as number);
  t.ok(
    headerBytes >= 40 * packetsToEn && headerBytes <= 100 * packetsToEn,
    `${headerBytes} header bytes in ${packetsToEn} packets`,
  );
  t.ok(Date.parse(String(audit.start)) < Date.parse(String(audit.end)), 'start before end');

  await waitFor('the syslog message', () => syslog.got.some((m) => m.includes('"flow ended"')), 10_000);
  const msg = syslog.got.find((m) => m.includes('"flow ended"'))!;
  // local3 (19) * 8 + info (6) = 158; the form syslog(3) writes on /dev/log.
  const m = /^<158>\w{3} [ \d]\d \d\d:\d\d:\d\d gsra-gateway\[\d+\]: (\{.*\})$/.exec(msg);
  t.ok(m, msg);
  t.match(JSON.parse(m![1]!), { user: 'alice', reason: 'fin', payloadToEn: audit.payloadToEn });
});

t.test('every metric the Grafana dashboard queries is on the running gateway’s /metrics', async (t) => {
  const text = await ops('/metrics');
  const exported = exportedMetrics(text);
  const queried = [...new Set(dashboardExpressions().flatMap(metricNames))];
  t.ok(queried.length >= 10, `${queried.length} metrics queried`);
  t.same(
    queried.filter((m) => !exported.has(m)),
    [],
  );
  t.match(text, /gsra_gateway_flows_ended_total\{reason="fin"\} 1/);
});
