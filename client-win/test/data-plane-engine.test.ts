// The agent's data planes (Linux and Windows share data-plane-engine.ts) hand the engine each VAT
// entry with the agent's view of the flow keys: it sends with EN→GW and receives with GW→EN.
import t from 'tap';
import { protocol } from '@gsra/common';
import { EngineDataPlane, engineFlow } from '../src/data-plane-engine.ts';

const keys = protocol.deriveFlowKeys(Buffer.alloc(32, 1), 17, 5000, 3);
const entry = {
  proto: 17 as const,
  pen: '192.168.1.10',
  s: 5353,
  vin: '198.19.224.7',
  d: 53,
  ggr: '203.0.113.1',
  t: 5000,
  keys,
};

t.test('the agent sends with the EN→GW keys and receives with the GW→EN keys', async (t) => {
  const f = engineFlow(3, entry);
  t.equal(f.tx, keys.enToGw);
  t.equal(f.rx, keys.gwToEn);
});

t.test('the VAT entry reaches the engine as it is, under the given id', async (t) => {
  t.match(engineFlow(3, entry), {
    id: 3,
    proto: 17,
    pen: '192.168.1.10',
    s: 5353,
    vin: '198.19.224.7',
    d: 53,
    t: 5000,
  });
  t.notOk('keys' in engineFlow(3, entry), 'the keys travel as tx/rx only');
});

t.test(
  'probeAll: every live flow of the engine sends a probe (none without flows), with the roaming timers',
  async (t) => {
    class InMemory extends EngineDataPlane {
      readonly resolvers: string[] = [];
      start(): void {}
      async close(): Promise<void> {}
    }
    const dp = new InMemory('198.19.224.0/20', { persistentKeepaliveSec: 0, quietProbeMs: 0 });
    t.equal(dp.probeAll(), 0);
    dp.addFlow(entry);
    t.equal(dp.probeAll(), 0, 'a UDP flow that has sent nothing yet has no d at the gateway: no probe');
    t.equal(dp.stats().probesSent, 0);
  },
);
