import t from 'tap';
import { createSocket } from 'node:dgram';
import { PassThrough } from 'node:stream';
import { buildQuery, parseDns, createLogger, DNS_TYPE, RCODE } from '@gsra/common';
import { answerQuery, DnsResponder } from '../src/dns-responder.ts';

const view = { knownHost: (n: string) => ['intra1.corp.example', 'intra2.corp.example'].includes(n) };
const o = { zone: 'corp.example', publicAddress: '203.0.113.1', ttl: 30, view };
const ask = (name: string, type: number = DNS_TYPE.A) =>
  parseDns(answerQuery(buildQuery(42, name, type), o)!);

t.test('a known internal name resolves to the gateway public address', async (t) => {
  const r = ask('intra1.corp.example');
  t.equal(r.rcode, RCODE.NOERROR);
  t.equal(r.id, 42);
  t.same([...r.answers[0]!.rdata], [203, 0, 113, 1]);
  t.equal(r.answers[0]!.ttl, 30);
});

t.test('an unknown name in the zone is NXDOMAIN', async (t) => {
  t.equal(ask('payroll.corp.example').rcode, RCODE.NXDOMAIN);
});

t.test('a name outside the zone is REFUSED (not a recursive resolver)', async (t) => {
  t.equal(ask('example.org').rcode, RCODE.REFUSED);
});

t.test('AAAA for a known name is an empty NOERROR', async (t) => {
  const r = ask('intra1.corp.example', DNS_TYPE.AAAA);
  t.equal(r.rcode, RCODE.NOERROR);
  t.same(r.answers, []);
});

t.test('garbage gets FORMERR or nothing, never a crash', async (t) => {
  t.equal(answerQuery(Buffer.alloc(5), o), null);
  const bad = buildQuery(7, 'intra1.corp.example');
  bad.writeUInt16BE(9, 4); // claims 9 questions
  const r = answerQuery(bad, o)!;
  t.equal(r.readUInt16BE(0), 7);
  t.equal(r.readUInt16BE(2) & 0xf, RCODE.FORMERR);
  const resp = buildQuery(8, 'x.corp.example');
  resp.writeUInt16BE(0x8000, 2);
  t.equal(answerQuery(resp, o), null, 'a response is never answered (no reflection loops)');
});

t.test('the responder answers over UDP', async (t) => {
  const srv = new DnsResponder({ ...o, logger: createLogger('gateway', { stream: new PassThrough() }) });
  const port = await srv.listen('127.0.0.1', 0);
  t.teardown(() => srv.close());
  const c = createSocket('udp4');
  t.teardown(() => c.close());
  const reply = await new Promise<Buffer>((resolve) => {
    c.on('message', (m) => resolve(m));
    c.send(buildQuery(5, 'intra2.corp.example'), port, '127.0.0.1');
  });
  t.same([...parseDns(reply).answers[0]!.rdata], [203, 0, 113, 1]);
});
