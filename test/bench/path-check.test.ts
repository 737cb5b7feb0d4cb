// The counter check every benchmark run makes: the bytes the tool moved must show in the counter
// of the path it names; and the parsers of the counters (iptables, wg, sysfs).
import t from 'tap';
import { checkPath, iptablesTaggedBytes, linkBytes, wgTransferBytes, PathError } from './path-check.ts';

const LISTING = `Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
      12      960 DROP       0    --  wan0   *       0.0.0.0/0           !203.0.113.1
  812345 1203456789 NFQUEUE    6    --  *      *       0.0.0.0/0            203.0.113.1          tcp dpts:40000:59999 /* gsra:gateway */ NFQUEUE num 1
      40     3000 NFQUEUE    6    --  *      *       0.0.0.0/0            10.0.0.1             tcp dpts:40000:59999 /* gsra:gateway */ NFQUEUE num 0
       7      700 NFQUEUE    6    --  *      *       0.0.0.0/0            10.0.0.1             /* gsra:gateway-old */ NFQUEUE num 3
`;

t.test('iptables counters: the bytes of exactly the rules with that comment', async (t) => {
  t.equal(iptablesTaggedBytes(LISTING, 'gsra:gateway'), 1203456789 + 3000);
  t.equal(iptablesTaggedBytes(LISTING, 'gsra:gateway-old'), 700);
  t.throws(() => iptablesTaggedBytes(LISTING, 'bench:plain'), PathError, 'a missing rule is an error, not 0');
});

t.test('wg transfer: rx + tx of every peer', async (t) => {
  t.equal(wgTransferBytes('abc=\t1000\t2000\n'), 3000);
  t.equal(wgTransferBytes('a=\t1\t2\nb=\t3\t4\n'), 10);
  t.throws(() => wgTransferBytes(''), /no peer/);
  t.throws(() => wgTransferBytes('a=\tx\t2\n'), /bad line/);
});

t.test('link statistics: rx_bytes + tx_bytes', async (t) => {
  t.equal(linkBytes('123\n456\n'), 579);
  t.throws(() => linkBytes('123\n'), /two counters/);
  t.throws(() => linkBytes('cat: no such file\n1\n'), /two counters/);
});

t.test('a run passes when its path counted at least the bytes it moved', async (t) => {
  t.equal(checkPath('the tunnel', 1000, 6000, 5000), 5000);
  t.equal(checkPath('the tunnel', 0, 10_000, 5000), 10_000, 'headers and other traffic may add to it');
});

t.test('a run fails when its bytes did not all go through the path', async (t) => {
  t.throws(
    () => checkPath('the tunnel', 1000, 5999, 5000),
    /moved 5000 bytes but only 4999 went through the tunnel/,
  );
  t.throws(() => checkPath('the tunnel', 1000, 1000, 5000), PathError, 'nothing went through');
  t.throws(() => checkPath('the tunnel', 1000, 500, 1), /went backwards/);
  t.throws(
    () => checkPath('the tunnel', 0, 100, 0),
    /moved no bytes/,
    'a run that moved nothing proves nothing',
  );
});
