// The Grafana dashboard (gateway/grafana/gsra-gateway.json) queries only what the gateway
// exports: every metric name in every PromQL expression of the dashboard (panels and template
// variables) is in the gateway's registry. The end-to-end ops test checks the same against a
// running gateway's /metrics in the lab (test/e2e/ops.test.ts).
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '@gsra/common';
import { checkGatewayConfig } from '../src/config.ts';
import { GatewayDaemon } from '../src/daemon.ts';
import { dashboardExpressions, exportedMetrics, metricNames } from './dashboard.ts';

t.test(
  'metric names in PromQL: not functions, keywords, labels, strings, durations or variables',
  async (t) => {
    t.same(metricNames('sum(gsra_gateway_sessions{instance=~"$instance"})'), ['gsra_gateway_sessions']);
    t.same(
      metricNames(
        'sum by (decision, reason) (rate(gsra_gateway_decisions_total{instance=~"$instance", decision="deny"}[$__rate_interval]))',
      ),
      ['gsra_gateway_decisions_total'],
    );
    t.same(metricNames('increase(a_total[1h]) / ignoring(x) group_left b_total offset 5m > bool 0'), [
      'a_total',
      'b_total',
    ]);
    t.same(metricNames('histogram_quantile(0.99, sum without (le) (rate(x_bucket[5m])))'), ['x_bucket']);
    t.same(metricNames('label_values(gsra_gateway_sessions, instance)'), ['gsra_gateway_sessions']);
    t.same(metricNames('{__name__="by_name_only"}'), ['by_name_only']);
    t.same(metricNames('max(up{job="x"}) and on() vector(1)'), ['up']);
  },
);

t.test(
  'the dashboard queries sessions, flows, decisions, drops, control messages and policy age',
  async (t) => {
    const names = new Set(dashboardExpressions().flatMap(metricNames));
    for (const m of [
      'gsra_gateway_sessions',
      'gsra_gateway_flows',
      'gsra_gateway_decisions_total',
      'gsra_gateway_dropped_packets_total',
      'gsra_gateway_control_messages_total',
      'gsra_gateway_policy_age_seconds',
    ])
      t.ok(names.has(m), m);
  },
);

t.test('every metric the dashboard queries is in the gateway daemon’s registry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-dash-'));
  writeFileSync(join(dir, 'pw'), 'x');
  writeFileSync(join(dir, 'ca'), 'never read: the daemon is not started');
  const config = checkGatewayConfig({
    publicAddress: '127.0.0.1',
    privateAddress: '127.0.0.1',
    wanInterface: 'lo',
    lanInterface: 'lo',
    ldap: {
      url: 'ldaps://127.0.0.1:1',
      caFile: join(dir, 'ca'),
      baseDn: 'dc=x',
      bindDn: 'cn=x',
      passwordFile: join(dir, 'pw'),
    },
  });
  // Not started: the registry is complete once the daemon is built (metrics, audit counters).
  const gw = new GatewayDaemon(config, { logger: createLogger('gateway', { stream: new PassThrough() }) });
  const exported = exportedMetrics(await gw.metrics.registry.metrics());
  const missing = [...new Set(dashboardExpressions().flatMap(metricNames))].filter((m) => !exported.has(m));
  t.same(missing, [], 'no metric the gateway does not export');
});
