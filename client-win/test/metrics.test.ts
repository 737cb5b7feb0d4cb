// The agent's Prometheus metrics (served as /metrics on its local ops endpoint): refused packets
// by reason, the engine's counters, sessions and flows.
import t from 'tap';
import { AgentMetrics } from '../src/metrics.ts';

t.test('the agent exposes refused packets by reason and its engine counters', async (t) => {
  const drops: Record<string, number> = { 'bad-mac': 2499, 'old-data': 4 };
  const m = new AgentMetrics({
    drops: () => drops,
    engine: () => ({ translatedIn: 1000, translatedOut: 900 }),
    sessions: () => 1,
    flows: () => 3,
  });
  const text = await m.registry.metrics();
  t.match(text, /gsra_agent_dropped_packets_total\{reason="bad-mac"\} 2499\n/);
  t.match(text, /gsra_agent_dropped_packets_total\{reason="old-data"\} 4\n/);
  t.match(text, /gsra_agent_engine_packets_total\{counter="translatedIn"\} 1000\n/);
  t.match(text, /gsra_agent_sessions 1\n/);
  t.match(text, /gsra_agent_flows 3\n/);
});
