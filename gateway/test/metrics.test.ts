// The gateway's Prometheus metrics: every reason the engine refuses a packet for is a counter of
// packets, read from the engine at scrape time.
import t from 'tap';
import { GatewayMetrics } from '../src/metrics.ts';

t.test('gsra_gateway_dropped_packets_total counts packets by reason', async (t) => {
  const m = new GatewayMetrics();
  const drops: Record<string, number> = { 'bad-mac': 10500, replay: 3, closed: 0 };
  m.dropSource = () => drops;
  let text = await m.registry.metrics();
  t.match(text, /gsra_gateway_dropped_packets_total\{reason="bad-mac"\} 10500\n/);
  t.match(text, /gsra_gateway_dropped_packets_total\{reason="replay"\} 3\n/);
  drops['bad-mac'] = 10501;
  text = await m.registry.metrics();
  t.match(
    text,
    /gsra_gateway_dropped_packets_total\{reason="bad-mac"\} 10501\n/,
    'each scrape reads the engine',
  );
});

t.test('without a data plane the family is empty', async (t) => {
  const m = new GatewayMetrics();
  t.notMatch(await m.registry.metrics(), /gsra_gateway_dropped_packets_total\{/);
});
