// The lab's offload helper reads `ethtool -k` (the per-segment ceiling depends on it being right).
import t from 'tap';
import { parseOffloads } from './offloads.ts';

const K = `Features for eth0:
rx-checksumming: on
tx-checksumming: on
tcp-segmentation-offload: off
	tx-tcp-segmentation: off
generic-segmentation-offload: on
generic-receive-offload: off
large-receive-offload: off [fixed]
`;

t.test('TSO, GSO and GRO from ethtool -k, sub-features ignored', async (t) => {
  t.same(parseOffloads(K), { tso: false, gso: true, gro: false });
});

t.test('a missing feature line is an error, not "off"', async (t) => {
  t.throws(
    () => parseOffloads(K.replace(/generic-receive-offload.*\n/, '')),
    /no generic-receive-offload line/,
  );
});
