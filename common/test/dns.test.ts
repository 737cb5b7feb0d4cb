import t from 'tap';
import { fuzzRandom } from './fuzz-random.ts';
import {
  buildQuery,
  buildResponse,
  parseDns,
  rewriteARecords,
  DnsError,
  DNS_TYPE,
  RCODE,
} from '../src/dns.ts';

t.test('a query round-trips through parse', async (t) => {
  const q = parseDns(buildQuery(0x1234, 'Intra1.Corp.Example.'));
  t.match(q, {
    id: 0x1234,
    response: false,
    questions: [{ name: 'intra1.corp.example', type: DNS_TYPE.A, class: 1 }],
  });
});

t.test('an A response carries the address and TTL asked for', async (t) => {
  const q = parseDns(buildQuery(7, 'intra1.corp.example'));
  const r = parseDns(buildResponse(q, { a: ['203.0.113.1'], ttl: 60, aa: true }));
  t.equal(r.response, true);
  t.equal(r.id, 7);
  t.equal(r.rcode, RCODE.NOERROR);
  t.equal(r.answers.length, 1);
  t.equal(r.answers[0]!.name, 'intra1.corp.example');
  t.same([...r.answers[0]!.rdata], [203, 0, 113, 1]);
  t.equal(r.answers[0]!.ttl, 60);
});

t.test('NXDOMAIN has no answers and the right rcode', async (t) => {
  const q = parseDns(buildQuery(9, 'nope.corp.example'));
  const r = parseDns(buildResponse(q, { rcode: RCODE.NXDOMAIN }));
  t.equal(r.rcode, RCODE.NXDOMAIN);
  t.same(r.answers, []);
});

t.test('rewriteARecords changes only matching A records, in place, same length, TTL capped', async (t) => {
  const q = parseDns(buildQuery(1, 'intra1.corp.example'));
  const b = buildResponse(q, { a: ['203.0.113.1', '198.51.100.7'], ttl: 3600 });
  const len = b.length;
  const n = rewriteARecords(b, (_name, addr) => (addr === '203.0.113.1' ? '10.200.0.1' : undefined), 30);
  t.equal(n, 1);
  t.equal(b.length, len);
  const r = parseDns(b);
  t.same([...r.answers[0]!.rdata], [10, 200, 0, 1]);
  t.equal(r.answers[0]!.ttl, 30);
  t.same([...r.answers[1]!.rdata], [198, 51, 100, 7]);
  t.equal(r.answers[1]!.ttl, 3600, 'untouched record keeps its TTL');
});

t.test('hostile messages are refused with DnsError', async (t) => {
  const good = buildResponse(parseDns(buildQuery(1, 'a.b')), { a: ['1.2.3.4'] });
  t.throws(() => parseDns(Buffer.alloc(11)), DnsError, 'short header');
  const loop = Buffer.from(good);
  loop.writeUInt16BE(0xc000 | 12, 12); // question name points at itself
  t.throws(() => parseDns(loop), /backwards/, 'pointer loop');
  const fwd = Buffer.from(good);
  fwd.writeUInt16BE(0xc000 | 40, 12);
  t.throws(() => parseDns(fwd), DnsError, 'forward pointer');
  t.throws(() => parseDns(good.subarray(0, good.length - 2)), /past the end/, 'truncated record');
  const badA = Buffer.from(good);
  badA.writeUInt16BE(5, good.length - 6); // rdlength 5 for an A record
  t.throws(() => parseDns(badA), DnsError);
  const ext = Buffer.from(good);
  ext[12] = 0x40; // extended label type
  t.throws(() => parseDns(ext), /label type/);
  const longName = Array.from({ length: 10 }, () => 'x'.repeat(60)).join('.');
  t.throws(() => buildQuery(1, longName), /255/);
});

t.test('random and mutated input never throws anything but DnsError (20k cases)', async (t) => {
  const seed = buildResponse(parseDns(buildQuery(1, 'intra1.corp.example')), {
    a: ['203.0.113.1', '1.1.1.1'],
  });
  const rnd = fuzzRandom(t, 'DNS fuzz');
  let other = 0;
  for (let i = 0; i < 20_000; i++) {
    let b: Buffer;
    if (i % 2) {
      b = rnd.bytes(i % 300);
    } else {
      b = Buffer.from(seed);
      for (let k = 0; k < 1 + (i % 4); k++) b[(i * 7919 + k * 104729) % b.length] = rnd.int(256);
    }
    try {
      rewriteARecords(b, () => '10.0.0.1');
    } catch (e) {
      if (!(e instanceof DnsError)) other++;
    }
  }
  t.equal(other, 0);
});
