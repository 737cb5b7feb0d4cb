// The per-flow audit record: its close reason from what the engine and the control plane know,
// its fields from the reservation row and the engine's counts, and one record per flow.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { createLogger } from '@gsra/common';
import { FlowAudit, auditRecord, closeReason, flowRecord, type FlowEnd } from '../src/audit.ts';
import type { FlowCounts } from '../src/data-plane.ts';
import { T0, counts, row } from './flow-fixture.ts';

t.test(
  'close reason: what the connection said, then the control plane, then failures, else idle',
  async (t) => {
    const cases: [FlowEnd, FlowCounts['close'] | undefined, string][] = [
      [{ by: 'control', cause: 'release' }, 'fin', 'fin'],
      [{ by: 'control', cause: 'release' }, 'rst', 'rst'],
      [{ by: 'engine', state: 'closing' }, 'fin', 'fin'],
      [{ by: 'control', cause: 'session' }, 'fin', 'fin'], // closed by itself before the logout
      [{ by: 'control', cause: 'session' }, 'none', 'session-down'],
      [{ by: 'control', cause: 'session' }, 'verify-failed', 'session-down'],
      [{ by: 'control', cause: 'policy' }, 'none', 'policy-change'],
      [{ by: 'control', cause: 'policy' }, 'rst', 'rst'],
      [{ by: 'stop' }, 'none', 'gateway-stop'],
      [{ by: 'engine', state: 'established' }, 'verify-failed', 'verify-failed'],
      [{ by: 'control', cause: 'lifetime' }, 'verify-failed', 'verify-failed'],
      [{ by: 'control', cause: 'release' }, 'verify-failed', 'verify-failed'],
      [{ by: 'engine', state: 'udp' }, 'none', 'idle'],
      [{ by: 'engine', state: 'established' }, 'none', 'idle'],
      [{ by: 'control', cause: 'lifetime' }, 'none', 'idle'],
      [{ by: 'control', cause: 'release' }, 'none', 'idle'],
      [{ by: 'control', cause: 'release' }, undefined, 'idle'], // no engine (diagnostics mode)
    ];
    for (const [end, close, want] of cases)
      t.equal(closeReason(end, close), want, `${JSON.stringify(end)} with ${close}`);
  },
);

t.test(
  'a flow record: the row’s who and where, the engine’s counts in the gateway’s directions',
  async (t) => {
    t.same(flowRecord(row(), counts(), T0, T0 + 65_432), {
      user: 'alice',
      group: 'sales',
      in: 'intra1.corp.example',
      pin: '10.0.0.11',
      d: 80,
      proto: 'tcp',
      t: 40123,
      ghr: '198.51.100.7:61000',
      en: '198.51.100.7:50123',
      start: '2026-05-04T09:00:00.000Z',
      durationMs: 65_432,
      packetsToIn: 12,
      bytesToIn: 1500,
      payloadToIn: 420,
      packetsToEn: 800,
      bytesToEn: 1_100_000,
      payloadToEn: 1_048_806,
      verifyFailed: 2,
    });
  },
);

t.test('an audit record adds its end and its close reason', async (t) => {
  const r = auditRecord(row({ proto: 17 }), counts('none'), T0, T0 + 1000, { by: 'engine', state: 'udp' });
  t.match(r, { proto: 'udp', end: '2026-05-04T09:00:01.000Z', durationMs: 1000, reason: 'idle' });
});

t.test('without the engine’s counts (no data plane) a record counts zero, not nothing', async (t) => {
  t.match(flowRecord(row(), undefined, T0, T0), { packetsToIn: 0, payloadToEn: 0, verifyFailed: 0 });
});

/** A FlowAudit writing to a captured log, a registry and a syslog stand-in. */
function audit() {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
  });
  const registry = new Registry();
  const also: string[] = [];
  const a = new FlowAudit({
    logger: createLogger('gateway', { stream }),
    registry,
    also: (j) => also.push(j),
  });
  const flush = () => new Promise((r) => setImmediate(r));
  return { a, lines, registry, also, flush };
}

t.test('one line per flow: the engine ends it first, the row’s end adds nothing', async (t) => {
  const { a, lines, also, flush } = audit();
  const r = row();
  a.mapped(r, T0);
  a.engineEnded(r, counts('fin'), 'closing', T0 + 5000);
  a.rowEnded(r, undefined, 'release', T0 + 9000);
  await flush();
  t.equal(lines.length, 1);
  t.match(lines[0], {
    message: 'flow ended',
    level: 'info',
    reason: 'fin',
    durationMs: 5000,
    payloadToEn: 1_048_806,
  });
  t.equal(also.length, 1, 'the same record goes to syslog');
  t.match(JSON.parse(also[0]!), { message: 'flow ended', user: 'alice', reason: 'fin', durationMs: 5000 });
});

t.test('a row that never carried a flow (unbound) writes nothing when it ends', async (t) => {
  const { a, lines, flush } = audit();
  a.rowEnded(row({ binding: undefined, mapping: undefined }), undefined, 'lifetime', T0);
  await flush();
  t.equal(lines.length, 0);
});

t.test('the gateway stopping ends every live flow with a record; live() lists them before', async (t) => {
  const { a, lines, flush } = audit();
  const r1 = row();
  const r2 = row({ id: 18, t: 40124 });
  const unbound = row({ id: 19, t: 40125, binding: undefined, mapping: undefined });
  a.mapped(r1, T0);
  a.mapped(r2, T0 + 100);
  const live = a.live([r1, r2, unbound], () => counts('none'), T0 + 1000);
  t.same(
    live.map((f) => [f.t, f.durationMs, f.state, f.close]),
    [
      [40123, 1000, 'closing', 'none'],
      [40124, 900, 'closing', 'none'],
    ],
  );
  a.stop([r1, r2, unbound], () => counts('none'), T0 + 2000);
  await flush();
  t.same(
    lines.map((l) => [l.t, l.reason]),
    [
      [40123, 'gateway-stop'],
      [40124, 'gateway-stop'],
    ],
  );
});

t.test('ended flows are counted by reason, their payload by direction', async (t) => {
  const { a, registry } = audit();
  for (const [i, close] of (['fin', 'fin', 'rst'] as const).entries()) {
    const r = row({ id: 100 + i });
    a.mapped(r, T0);
    a.rowEnded(r, counts(close), 'release', T0 + 1);
  }
  const text = await registry.metrics();
  t.match(text, /gsra_gateway_flows_ended_total\{reason="fin"\} 2/);
  t.match(text, /gsra_gateway_flows_ended_total\{reason="rst"\} 1/);
  t.match(text, /gsra_gateway_flow_payload_bytes_total\{direction="to-en"\} 3146418/);
  t.match(text, /gsra_gateway_flow_payload_bytes_total\{direction="to-in"\} 1260/);
});
