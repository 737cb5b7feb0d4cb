// The status JSON's parts (sessions from the control events, the latest refusals, drops, the
// engine's state), `gsra-gateway status` as text, and the ops server's browser-facing answers:
// the page, its headers, and no answer to a Host that is a name (DNS rebinding).
import t, { type Test } from 'tap';
import { request } from 'node:http';
import { Registry } from 'prom-client';
import { protocol } from '@gsra/common';
import { OpsServer } from '../src/ops-server.ts';
import { RecentRefusals, SessionBook, engineEntry, packetDrops, type GatewayStatus } from '../src/status.ts';
import { hostAllowed, statusPageFiles } from '../src/status-page.ts';
import { flowLines, summaryLines } from '../src/status-text.ts';
import { flowRecord, type LiveFlowRecord } from '../src/audit.ts';
import { T0, counts, row } from './flow-fixture.ts';

const SID = 'a1b2c3d4e5f60718';

const rows = (n: number, mapped: number, sessionId = SID) =>
  Array.from({ length: n }, (_, i) => ({
    sessionId,
    ...(i < mapped ? { mapping: { d: 80 } } : {}),
  })) as protocol.Reservation[];

t.test('sessions: up, moved, down, with their ports and flows counted from the table', async (t) => {
  const b = new SessionBook();
  b.onEvent(
    {
      kind: 'session-up',
      sessionId: SID,
      user: 'alice',
      userDn: 'x',
      group: 'sales',
      gkVersion: 1,
      en: '198.51.100.7:5000',
    },
    T0,
  );
  b.onEvent(
    { kind: 'peer-moved', sessionId: SID, from: '198.51.100.7:5000', to: '198.51.100.9:6000' },
    T0 + 1,
  );
  t.same(b.list(rows(4, 1)), [
    {
      id: 'a1b2c3d4',
      user: 'alice',
      group: 'sales',
      en: '198.51.100.9:6000',
      since: '2026-05-04T09:00:00.000Z',
      reservations: 4,
      flows: 1,
    },
  ]);
  b.onEvent({ kind: 'session-down', sessionId: SID, user: 'alice', reason: 'idle' }, T0 + 2);
  t.same(b.list(rows(4, 1)), []);
});

t.test('refusals: denials only, newest first, at most the bound; control drops by reason', async (t) => {
  const r = new RecentRefusals(3);
  const deny = (i: number): protocol.GatewayEvent => ({
    kind: 'decision',
    step: 'reserve',
    user: `u${i}`,
    group: 'sales',
    in: 'intra2.corp.example',
    en: '198.51.100.7:5000',
    decision: 'deny',
    reason: 'not-in-group',
  });
  r.onEvent({ ...deny(0), decision: 'allow', reason: 'ok' } as protocol.GatewayEvent, T0);
  for (let i = 1; i <= 5; i++) r.onEvent(deny(i), T0 + i * 1000);
  t.same(
    r.list().map((x) => [x.user, x.at]),
    [
      ['u5', '2026-05-04T09:00:05.000Z'],
      ['u4', '2026-05-04T09:00:04.000Z'],
      ['u3', '2026-05-04T09:00:03.000Z'],
    ],
  );
  r.onEvent({ kind: 'dropped', from: '203.0.113.9:1', reason: 'bad-mac' }, T0);
  r.onEvent({ kind: 'dropped', from: '203.0.113.9:1', reason: 'bad-mac' }, T0);
  r.onEvent({ kind: 'dropped', from: '203.0.113.9:1', reason: 'not-gsra' }, T0);
  t.same(r.controlDrops(), { 'bad-mac': 2, 'not-gsra': 1 });
});

t.test('refused packets: the engine’s drop reasons that happened', async (t) => {
  t.same(packetDrops({ 'bad-mac': 3, replay: 0, 'no-flow': 7 }), { 'bad-mac': 3, 'no-flow': 7 });
  t.same(packetDrops(undefined), {});
});

t.test('the engine’s state: running or not, and the counters that mean trouble', async (t) => {
  t.match(
    engineEntry(
      { flows: 2, packets: 900, panics: 1, eventsDropped: 0, backendSendErrors: 2, backendRecvErrors: 1 },
      'nfqueue',
    ),
    { running: true, backend: 'nfqueue', entries: 2, packets: 900, panics: 1, backendErrors: 3 },
  );
  t.match(engineEntry(null, 'nfqueue'), { running: false, backend: null, packets: 0 });
});

t.test('Host names the page answers to: addresses and localhost, never a name', async (t) => {
  for (const h of ['127.0.0.1:9464', '127.0.0.1', 'localhost:9464', '10.0.0.1:9464', '[::1]:9464', '[::1]'])
    t.ok(hostAllowed(h), h);
  for (const h of [
    undefined,
    '',
    'evil.example',
    'evil.example:9464',
    'cafe:9464',
    '127.0.0.1.nip.io',
    'localhost.evil',
  ])
    t.notOk(hostAllowed(h), String(h));
});

const flow: LiveFlowRecord = {
  ...flowRecord(row(), counts(), T0, T0 + 12_400),
  state: 'established',
  close: 'none',
};

t.test('status --flows: one row per flow, the audit fields in columns', async (t) => {
  const [head, row] = flowLines([flow, { ...flow, t: 40124, state: 'closing', close: 'fin' }]);
  t.match(head, /^USER\s+GROUP\s+IN\s+HOST\s+PROTO\s+PC \(GHR:M\)\s+PAYLOAD TO IN\s+PAYLOAD TO EN/);
  t.match(
    row,
    /^alice\s+sales\s+intra1\.corp\.example\s+10\.0\.0\.11:80\s+tcp\s+198\.51\.100\.7:61000\s+420\s+1048806\s+12\s+800\s+1500\s+1100000\s+2026-05-04T09:00:00\.000Z\s+12\s+established$/,
  );
  t.match(flowLines([flow, { ...flow, state: 'closing', close: 'fin' }])[2], /closing \(fin\)$/);
  t.same(flowLines([]), ['no live flow']);
});

t.test('status: the summary names a problem and lists every reserved port', async (t) => {
  const s = {
    uptimeSec: 5,
    policy: { ageSec: null, usable: false, refreshSec: 30 },
    health: { ok: false, problems: ['directory: no usable policy snapshot (refusing every request)'] },
    control: { sessions: 1, reservations: 1, authCache: 0, ephemeralKeys: 0 },
    ports: { range: '40000-40063', inUse: 1 },
    flows: [],
    reservations: [
      {
        user: 'alice',
        group: 'sales',
        in: 'intra1.corp.example',
        proto: 'tcp',
        t: 40001,
        en: '1.2.3.4:5',
        binding: null,
        d: null,
        expiresInSec: 100,
      },
    ],
  } as unknown as GatewayStatus;
  const text = summaryLines(s).join('\n');
  t.match(text, /LDAP policy UNUSABLE/);
  t.match(text, /PROBLEM: directory: no usable policy snapshot/);
  t.match(text, /alice\s+sales\s+intra1\.corp\.example\s+tcp\s+40001\s+1\.2\.3\.4:5\s+-\s+-/);
});

/** An ops server with the page, on a free loopback port. */
async function ops(t: Test, page = true) {
  const server = new OpsServer({
    registry: new Registry(),
    health: () => [],
    status: () => ({ sessions: [] }),
    ...(page ? { page: statusPageFiles() } : {}),
  });
  const a = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close());
  return { port: a.port, base: `http://127.0.0.1:${a.port}` };
}

t.test('the page, its stylesheet and its script, with headers that keep it read-only', async (t) => {
  const { base } = await ops(t);
  for (const [path, type] of [
    ['/', /^text\/html/],
    ['/status-page/status.css', /^text\/css/],
    ['/status-page/status.js', /^text\/javascript/],
    ['/status', /^application\/json/],
  ] as const) {
    const r = await fetch(base + path);
    t.equal(r.status, 200, path);
    t.match(r.headers.get('content-type'), type, path);
    t.match(
      r.headers.get('content-security-policy'),
      /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/,
    );
    t.equal(r.headers.get('x-content-type-options'), 'nosniff');
    t.equal(r.headers.get('cache-control'), 'no-store');
  }
  t.equal((await fetch(`${base}/status-page/../../src/daemon.ts`)).status, 404, 'nothing else is served');
  t.equal((await fetch(`${base}/`, { method: 'POST' })).status, 405);
});

t.test('a name in Host gets no page and no status (421); /metrics still answers', async (t) => {
  const { port } = await ops(t);
  const get = (path: string, host: string) =>
    new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
  t.equal(await get('/', 'rebind.evil.example:9464'), 421);
  t.equal(await get('/status', 'rebind.evil.example'), 421);
  t.equal(await get('/metrics', 'gw1.corp.example:9464'), 200, 'Prometheus may scrape by name');
  t.equal(await get('/', `127.0.0.1:${port}`), 200);
});

t.test('with the page turned off (ops.statusPage false) / is not found', async (t) => {
  const { base } = await ops(t, false);
  t.equal((await fetch(`${base}/`)).status, 404);
  t.equal((await fetch(`${base}/status`)).status, 200);
});
