// ping's output as the latency figures read it: one time per reply, and a summary that must agree.
import t from 'tap';
import { parsePing } from './probe.ts';

const OUT = `PING 203.0.113.1 (203.0.113.1) 56(84) bytes of data.
64 bytes from 203.0.113.1: icmp_seq=1 ttl=63 time=0.081 ms
64 bytes from 203.0.113.1: icmp_seq=2 ttl=63 time=0.069 ms
64 bytes from 203.0.113.1: icmp_seq=4 ttl=63 time=1.25 ms

--- 203.0.113.1 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 18ms
rtt min/avg/max/mdev = 0.069/0.466/1.250/0.553 ms
`;

t.test('every reply time, the counts, and the ICMP bytes both ways', async (t) => {
  t.same(parsePing(OUT), { samples_ms: [0.081, 0.069, 1.25], sent: 4, received: 3, bytes: 2 * 56 * 3 });
});

t.test('output without a summary or with missing reply lines is an error', async (t) => {
  t.throws(() => parsePing('ping: connect: Network is unreachable\n'), /no summary/);
  t.throws(
    () => parsePing(OUT.replace(/.*icmp_seq=2.*\n/, '')),
    /3 replies in the summary but 2 reply lines/,
  );
});
