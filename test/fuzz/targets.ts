// What the coverage-guided fuzzer runs (fuzzer.ts): the control-protocol decoder with both state
// machines behind it, and the DNS parser with everything built on it. Each target says what a
// crash is: an exception other than the parser's own rejection (ProtocolError, DnsError), or a
// broken invariant (a decoded datagram must re-encode to the same bytes; a rewrite keeps the
// length; the gateway's own DNS answers must parse).
import { protocol, parseDns, rewriteARecords, buildQuery, buildResponse, DnsError } from '@gsra/common';
import { answerQuery } from '../../gateway/src/dns-responder.ts';
import { DnsGuard } from '../../client-win/src/dns-guard.ts';
import { samples } from '../../common/test/protocol/samples.ts';
import { FakeDirectory, aliceAgent, T0 } from '../../common/test/protocol/harness.ts';
import type { Target } from './fuzzer.ts';

const { decode, encode, ProtocolError, GatewayControl, MessageType } = protocol;

function controlTarget(): Target {
  const gw = new GatewayControl({ policy: new FakeDirectory(), resetKey: Buffer.alloc(32, 1) });
  const agent = aliceAgent();
  agent.login(T0);
  const from = { addr: '203.0.113.2', port: 61000 };
  return {
    name: 'control',
    files: ['/common/src/protocol/'],
    maxLen: 1300,
    dictionary: [
      Buffer.from([0x47, 0x53, 2]),
      ...Object.values(MessageType).map((c) => Buffer.from([c])),
      Buffer.from([4]),
      Buffer.from([6]),
      Buffer.from([0, 8]),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]),
    ],
    seeds: () => samples.map((m) => encode(m)),
    run(data) {
      let m;
      try {
        m = decode(data);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
      if (m && !encode(m).equals(data))
        throw new Error('decoded datagram does not re-encode to the same bytes');
      gw.handleDatagram(data, from, T0); // never throws on bad input
      gw.handleDatagram(data, from, T0, 40001); // as a probe on a reserved port
      agent.handleDatagram(data, T0);
    },
  };
}

/** IPv4 + UDP around a DNS message. */
function udp(src: number[], sport: number, dst: number[], dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(28);
  h[0] = 0x45;
  h.writeUInt16BE(28 + payload.length, 2);
  h[9] = 17;
  Buffer.from(src).copy(h, 12);
  Buffer.from(dst).copy(h, 16);
  h.writeUInt16BE(sport, 20);
  h.writeUInt16BE(dport, 22);
  return Buffer.concat([h, payload]);
}

function dnsTarget(): Target {
  const view = { knownHost: (n: string) => n === 'intra1.corp.example' };
  const opts = { zone: 'corp.example', publicAddress: '203.0.113.1', ttl: 30, view };
  const guard = new DnsGuard({ resolvers: ['203.0.113.1'], zones: ['corp.example'] });
  const PC = [192, 168, 1, 10];
  const GGR = [203, 0, 113, 1];
  return {
    name: 'dns',
    files: ['/common/src/dns.ts', '/gateway/src/dns-responder.ts', '/client-win/src/dns-guard.ts'],
    maxLen: 1500,
    dictionary: [
      Buffer.from([0xc0, 0x0c]),
      Buffer.from([0xc0, 0x00]),
      Buffer.from([0x3f]),
      Buffer.from([0, 1, 0, 1]),
      Buffer.from([0, 28, 0, 1]),
      Buffer.from([0, 5, 0, 1]),
      Buffer.from([0x81, 0x80]),
      Buffer.from('\x04corp\x07example\x00', 'latin1'),
    ],
    seeds: () => {
      const q = buildQuery(0x1234, 'intra1.corp.example');
      return [
        q,
        buildQuery(7, 'x.example.org', 28),
        buildResponse(parseDns(q), { a: ['203.0.113.1'], ttl: 300, aa: true }),
        buildResponse(parseDns(q), { rcode: 3 }),
      ];
    },
    run(data) {
      let parsed = true;
      try {
        parseDns(data);
      } catch (e) {
        if (!(e instanceof DnsError)) throw e;
        parsed = false;
      }
      const copy = Buffer.from(data);
      try {
        rewriteARecords(copy, () => '198.19.224.1', 60);
      } catch (e) {
        if (!(e instanceof DnsError)) throw e;
        if (parsed) throw new Error('rewriteARecords refused a message parseDns accepted', { cause: e });
      }
      if (copy.length !== data.length) throw new Error('rewrite changed the length');
      const reply = answerQuery(data, opts);
      if (reply) parseDns(reply); // the gateway's own answers must be well-formed (throws if not)
      guard.query(udp(PC, 40000, GGR, 53, data), T0);
      guard.answer(udp(GGR, 53, PC, 40000, data), T0);
    },
  };
}

export const TARGETS: Record<string, () => Target> = { control: controlTarget, dns: dnsTarget };
