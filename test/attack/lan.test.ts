// A hostile host on the office LAN (intra2's namespace) that can put packets with intra1's address
// in front of the gateway, and an observer of the internet link: the keystream attack of issue 10.
// intra1 sends alice a secret; the attacker captured its ciphertext on the internet and sends, as
// intra1, zeros at the same sequence number. With PCCOM's old keystream (indexed by the sequence
// number alone) the gateway's encryption of those zeros was the secret's keystream, and the XOR
// with the capture gave the secret. With the synthetic IV (docs/pccom.md §3) it is the keystream
// of another IV: the XOR is garbage. Meanwhile a download runs and must arrive intact, and the
// zeros must never reach alice's application.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ADDR } from '../lab/lab.ts';
import { waitFor } from '../lab/exec.ts';
import type { IpPacket } from '../lab/pcap.ts';
import { IN1 } from '../e2e/gsra-lab.ts';
import { STREAM, delta, midway, startAttackLab } from './attack-lab.ts';
import { TCP, buildSegment, parseSegment, withoutPccom } from './packets.ts';

const PORT = 7001;

t.test('a LAN host spoofing intra1 learns no keystream', async (t) => {
  const a = await startAttackLab();
  t.teardown(() => a.stop());
  const server = a.lab.spawn('in1', 'stream', ['python3', STREAM, 'server', ADDR.in1, String(PORT)]);
  await waitFor('the stream server', () => server.log.includes('listening'), 10_000);

  const secret = Buffer.from(randomBytes(60).toString('base64')); // 80 bytes
  const [gw0, en0] = [await a.gatewayDrops(), await a.agentDrops()];
  const net = await a.captureInternet();
  const download = a.download();
  await midway(download, a.big.size, 0.1);

  // alice's client connects, then waits 2 s before asking for the secret.
  const client = a.lab.spawn('en1', 'secret', [
    'python3',
    STREAM,
    'secret',
    IN1,
    String(PORT),
    secret.toString(),
    '2',
    '6',
  ]);
  await waitFor('the client to connect', () => client.log.includes('connected'), 10_000);
  await new Promise((r) => setTimeout(r, 300));
  // The secret's flow on the internet link: the latest SYN to the gateway.
  const syn = net
    .peek()
    .filter((p) => p.dst === ADDR.gwWan && p.proto === 6 && (p.flags! & TCP.SYN) !== 0)
    .at(-1)!;
  const [m, tPort] = [syn.sport!, syn.dport!];
  // alice's acknowledgments of this flow are lost at her home router (pure ACKs only: her request
  // passes), so the gateway never learns she has the secret: its position stays "in flight".
  const lossRule = ['FORWARD', '-i', 'lan0', '-s', ADDR.en1, '-p', 'tcp', '--dport', String(tPort)];
  const small = ['-m', 'length', '--length', '0:100', '-j', 'DROP'];
  await a.lab.exec('hr', ['iptables', '-I', ...lossRule, ...small]);
  t.teardown(() => a.lab.exec('hr', ['iptables', '-D', ...lossRule, ...small], { allowFail: true }));

  await waitFor('alice to receive the secret', () => client.log.includes('received'), 15_000);
  const flowDown = (ps: IpPacket[]) =>
    ps.filter((p) => p.proto === 6 && p.src === ADDR.gwWan && p.sport === tPort && p.dport === m);
  const c1 = flowDown(net.peek()).find((p) => p.payload.length === secret.length)!;
  t.ok(c1, 'the secret’s ciphertext was captured on the internet link');

  // The attack: as intra1 (10.0.0.11:7001 -> PGR:t), zeros at the secret's sequence number, with
  // every other header field as intra1 sent it.
  const s1 = parseSegment(c1.raw);
  const zeros = buildSegment({
    ...s1,
    src: ADDR.in1,
    sport: PORT,
    dst: ADDR.gwLan,
    dport: tPort,
    options: withoutPccom(s1.options),
    payload: Buffer.alloc(secret.length),
  });
  const before = flowDown(net.peek()).length;
  await a.send('in2', [zeros]);
  // The gateway's emission of the zeros: the secret's header exactly (intra1's own retransmissions
  // of the secret carry newer timestamps).
  const hdr = withoutPccom(s1.options);
  const isZeros = (p: IpPacket) => {
    const s = parseSegment(p.raw);
    return s.seq === s1.seq && p.payload.length === secret.length && withoutPccom(s.options).equals(hdr);
  };
  let c2: IpPacket | undefined;
  await waitFor(
    'the gateway to emit the zeros, encrypted',
    () =>
      (c2 = flowDown(net.peek())
        .slice(before)
        .find((p) => isZeros(p) && !p.payload.equals(c1.payload))) !== undefined,
    10_000,
  );
  const xor = Buffer.from(c1.payload.map((b, i) => b ^ c2!.payload[i]!));
  t.notOk(xor.equals(secret), 'the XOR of the two emissions is not the secret');
  const same = xor.filter((b, i) => b === secret[i]).length;
  t.ok(
    same < secret.length / 8,
    `${same} of ${secret.length} bytes coincide (by chance alone: ${(secret.length / 256).toFixed(1)} on average)`,
  );
  t.notOk(
    c2!.payload.equals(xor.map((b, i) => b ^ secret[i]!)),
    'the zeros were not encrypted under the secret’s keystream',
  );

  // alice's acknowledgments flow again: the gateway sees she has the secret, and that position is
  // never encrypted again.
  await a.lab.exec('hr', ['iptables', '-D', ...lossRule, ...small]);
  await new Promise((r) => setTimeout(r, 1500)); // intra1 retransmits; alice acknowledges again
  const afterAck = flowDown(net.peek()).length;
  await a.send('in2', [zeros]);
  await new Promise((r) => setTimeout(r, 500));
  const late = flowDown(net.peek())
    .slice(afterAck)
    .filter((p) => parseSegment(p.raw).seq === s1.seq);
  t.ok(
    late.length >= 1,
    'the gateway still answers the spoofed segment (a bare header, so alice acknowledges)',
  );
  t.ok(
    late.every((p) => p.payload.length === 0),
    'but no payload: that position is not encrypted again',
  );

  await client.wait();
  t.match(
    client.log,
    new RegExp(`received ${secret.toString().replace(/[+/]/g, '\\$&')}\\n`),
    'alice’s application read the secret, not zeros',
  );
  t.equal(await download.done, a.big.sha, 'the download completes with the right sha256');
  await net.stop();
  const en = delta(en0, await a.agentDrops());
  const gw = delta(gw0, await a.gatewayDrops());
  t.ok(
    (en['old-data'] ?? 0) >= 1,
    `the zeros reached alice's PC only as a bare header (agent old-data +${en['old-data']})`,
  );
  t.same(
    Object.keys(gw).filter((k) => k !== 'old-data'),
    [],
    'the gateway refused nothing else: on the LAN, intra1’s address and port are all it can check',
  );
  t.ok((gw['old-data'] ?? 0) >= 1, `the second copy left the gateway bare (old-data +${gw['old-data']})`);
});
