// Reading iperf3 3.12's JSON: receiver-side rate and bytes for TCP, received datagrams per second
// and loss for UDP; iperf3's own error is passed on.
import t from 'tap';
import { parseTcp, parseUdp, iperfArgv } from './iperf.ts';

const tcp = (o: object) =>
  JSON.stringify({
    end: {
      sum_sent: { seconds: 4, bytes: 600_000_000, bits_per_second: 1.2e9, retransmits: 17 },
      sum_received: { seconds: 4.01, bytes: 599_000_000, bits_per_second: 1.195e9 },
      ...o,
    },
  });

t.test('TCP: Gbit/s and bytes at the receiver, retransmits at the sender', async (t) => {
  t.same(parseTcp(tcp({})), { gbps: 1.195, bytes: 599_000_000, retransmits: 17 });
});

t.test('TCP: a result without retransmits says null, not 0', async (t) => {
  t.equal(parseTcp(tcp({ sum_sent: { bytes: 1 } })).retransmits, null);
});

t.test('UDP: received pps = (packets - lost) / seconds, loss in percent', async (t) => {
  const text = JSON.stringify({
    end: { sum_received: { seconds: 2, bytes: 64 * 75_000, packets: 100_000, lost_packets: 25_000 } },
  });
  t.same(parseUdp(text), { pps: 37_500, lossPct: 25, bytes: 4_800_000 });
});

t.test("iperf3's errors and missing fields are errors", async (t) => {
  t.throws(() => parseTcp('{"error":"unable to connect to server"}'), /iperf3: unable to connect/);
  t.throws(() => parseTcp('{"end":{}}'), /no end.sum_received/);
  t.throws(
    () =>
      parseUdp(
        JSON.stringify({ end: { sum_received: { seconds: 0, bytes: 0, packets: 0, lost_packets: 0 } } }),
      ),
    /UDP/,
  );
  t.throws(() => parseTcp('iperf3: error - the server is busy'), /printed no JSON/);
});

t.test('the same settings for every path: only target, direction and shape differ', async (t) => {
  t.same(iperfArgv('10.0.0.21', { dir: 'en-in', seconds: 4, streams: 4 }), [
    'iperf3',
    '-c',
    '10.0.0.21',
    '-p',
    '5201',
    '-t',
    '4',
    '-J',
    '--connect-timeout',
    '5000',
    '-P',
    '4',
  ]);
  t.same(iperfArgv('x', { dir: 'in-en', seconds: 3, udpSize: 64 }).slice(-6), [
    '-u',
    '-l',
    '64',
    '-b',
    '0',
    '-R',
  ]);
});
