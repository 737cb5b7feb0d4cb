// An attacker on the internet segment (the lab's attacker namespace, 203.0.113.66) against a live
// GSRA download: forged segments with in-window sequence numbers, RSTs and FINs, bit-flipped and
// replayed copies of captured segments, a replayed SYN during and after the connection, forged
// ICMP errors, and a LAN address posing from the internet. It sees every packet of the internet
// link (the harness hands it the capture) and may spoof any source address there. Every case:
// the download completes with the right sha256, nothing forged reaches intra1 or the application,
// and the drops show in both daemons' /metrics under their reason.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ADDR } from '../lab/lab.ts';
import type { IpPacket } from '../lab/pcap.ts';
import {
  LONG,
  delta,
  midway,
  startAttackLab,
  wireFlow,
  type AttackLab,
  type Download,
  type LiveCapture,
} from './attack-lab.ts';
import {
  TCP,
  buildSegment,
  flipBit,
  fromSource,
  icmpError,
  parseSegment,
  pccomOption,
  withoutPccom,
  type Segment,
} from './packets.ts';

const FORGED = LONG ? 2000 : 40;

/** A copy of a captured protected segment with another payload and a MAC of random bytes. */
function forge(p: IpPacket, change: Partial<Segment>, keepOption = true): Buffer {
  const s = { ...parseSegment(p.raw), ...change };
  const o = pccomOption(s.options);
  if (o && keepOption) {
    s.options = Buffer.from(s.options);
    randomBytes(12).copy(s.options, o.at + o.len - 12);
  } else if (o) s.options = withoutPccom(s.options);
  return buildSegment(s);
}

const lastData = (ps: IpPacket[]) => ps.filter((p) => p.payload.length > 0).at(-1)!;

t.test('an attacker on the internet against a live download', async (t) => {
  const a: AttackLab = await startAttackLab();
  t.teardown(() => a.stop());

  /**
   * Runs `attack` while a download is under way, then returns the downloaded file's sha256, the
   * drops each daemon counted meanwhile, and the captures (internet link, intra1).
   *
   * An attack meant for a live connection (`live`) must be over before the download ends, or its
   * packets meet a closed flow and are refused for that instead (`closed`). It normally is, by
   * seconds; on a machine that stalls it may not be. Then the case runs again on a new download
   * (the attack starts afresh: it keeps no state across runs), at most three times, and says so.
   */
  const during = async (
    t: { comment(...args: unknown[]): void },
    attack: (flow: ReturnType<typeof wireFlow>, net: LiveCapture, d: Download) => Promise<void>,
    live = true,
  ) => {
    for (let run = 1; ; run++) {
      const [gw0, en0] = [await a.gatewayDrops(), await a.agentDrops()];
      const net = await a.captureInternet();
      const in1 = await a.captureIntra1();
      const d = a.download();
      await midway(d, a.big.size);
      const t0 = Date.now();
      await attack(wireFlow(net.peek()), net, d);
      // curl has written every byte before it ends, so a full file is a download that is over.
      const late = live && d.received() >= a.big.size;
      const took = Date.now() - t0;
      const sha = await d.done;
      await new Promise((r) => setTimeout(r, 300));
      const caps = { net: await net.stop(), in1: await in1.stop() };
      const r = { sha, gw: delta(gw0, await a.gatewayDrops()), en: delta(en0, await a.agentDrops()), caps };
      if (!late) return r;
      const why = `the download ended before the attack did (the attack took ${took} ms)`;
      if (run === 3) throw new Error(`${why}, three times: the attack never met a live connection`);
      t.comment(`${why}; once more, on a new download`);
    }
  };
  const intact = 'the download completes with the right sha256';

  await t.test(
    'forged segments with in-window sequence numbers are dropped at both ends (bad-mac)',
    async (t) => {
      const junk: Buffer[] = [];
      const r = await during(t, async (f) => {
        junk.length = 0;
        const up = f.up.at(-1)!;
        const down = lastData(f.down);
        const toGw = Array.from({ length: FORGED }, () => {
          const payload = randomBytes(200);
          junk.push(payload);
          return forge(up, { payload });
        });
        const toEn = Array.from({ length: FORGED }, () =>
          forge(down, { payload: randomBytes(down.payload.length) }),
        );
        await a.send('attacker', [...toGw, ...toEn]);
      });
      t.equal(r.sha, a.big.sha, intact);
      t.equal(r.gw['bad-mac'], FORGED, 'the gateway drops every forged segment as bad-mac');
      t.equal(r.en['bad-mac'], FORGED, 'the agent drops every forged segment as bad-mac');
      const seen = r.caps.in1.filter((p) => junk.some((j) => p.payload.includes(j.subarray(0, 32))));
      t.equal(seen.length, 0, 'no forged byte reaches intra1');
    },
  );

  await t.test(
    'forged RSTs and FINs toward both ends are dropped (bad-mac with a MAC, no-mac without)',
    async (t) => {
      const toEn: Segment[] = [];
      const atEn = await a.captureHost('en1');
      const r = await during(t, async (f) => {
        toEn.length = 0;
        const up = f.up.at(-1)!;
        const down = lastData(f.down);
        const packets: Buffer[] = [];
        // FINs first: the home router's own connection tracking lets fewer packets of a flow through
        // after it saw a RST (it is not ours to defend; what reaches alice's PC is counted below).
        for (const flags of [TCP.FIN | TCP.ACK, TCP.RST | TCP.ACK, TCP.RST])
          for (const keep of [true, false]) {
            packets.push(forge(up, { flags, payload: Buffer.alloc(0) }, keep));
            const p = forge(down, { flags, payload: Buffer.alloc(0) }, keep);
            toEn.push(parseSegment(p));
            packets.push(p);
          }
        await a.send('attacker', packets, 5);
      });
      t.equal(r.sha, a.big.sha, intact);
      t.same([r.gw['bad-mac'], r.gw['no-mac']], [3, 3], 'the gateway drops all six');
      const seen = (await atEn.stop()).filter((p) => {
        const s = parseSegment(p.raw);
        return toEn.some((f) => f.seq === s.seq && f.flags === s.flags && f.options.equals(s.options));
      });
      const withMac = seen.filter((p) => pccomOption(parseSegment(p.raw).options)).length;
      t.ok(
        withMac >= 1 && seen.length - withMac >= 1,
        `${seen.length} of the six crossed alice's home router`,
      );
      t.same(
        [r.en['bad-mac'] ?? 0, r.en['no-mac'] ?? 0],
        [withMac, seen.length - withMac],
        'the agent drops each of them',
      );
      const resets = r.caps.in1.filter((p) => p.dport === 80 && (p.flags! & TCP.RST) !== 0);
      t.equal(resets.length, 0, 'intra1 sees no RST');
    },
  );

  await t.test('bit-flipped copies of captured segments are dropped (bad-mac)', async (t) => {
    let [nUp, nDown] = [0, 0];
    const r = await during(t, async (f) => {
      const flips: Buffer[] = [];
      // Toward the gateway: any covered header bit, the option's MAC, the payload.
      const ups = f.up.slice(-FORGED);
      ups.forEach((p, i) => {
        const ihl = (p.raw[0]! & 15) * 4;
        const spots = [ihl + 4, ihl + 8, ihl + 12, ihl + 14, ihl + 18, p.length - 1, p.length - 3];
        flips.push(
          flipBit(
            p.raw.subarray(0, p.length),
            spots[i % spots.length]!,
            spots[i % spots.length] === ihl + 12 ? 0 : i % 8,
          ),
        );
      });
      // Toward the agent (through the home router): the payload and the MAC.
      const downs = f.down.filter((p) => p.payload.length > 0).slice(-FORGED);
      downs.forEach((p, i) =>
        flips.push(flipBit(p.raw.subarray(0, p.length), p.length - 1 - (i % 40), i % 8)),
      );
      await a.send('attacker', flips);
      [nUp, nDown] = [ups.length, downs.length];
    });
    t.equal(r.sha, a.big.sha, intact);
    t.ok(nUp > 0 && nDown > 0, `${nUp} + ${nDown} flipped copies sent`);
    t.equal(r.gw['bad-mac'], nUp, 'every flipped copy is dropped by the gateway');
    t.equal(r.en['bad-mac'], nDown, 'every flipped copy is dropped by the agent');
  });

  await t.test(
    'replayed segments deliver nothing twice; replays from elsewhere are wrong-source',
    async (t) => {
      let n = 0;
      const r = await during(t, async (f) => {
        const request = f.up.find((p) => p.payload.length > 0)!; // encrypted: its first data segment
        t.ok(request, 'the request was captured');
        const syn = f.up.find((p) => (p.flags! & TCP.SYN) !== 0)!;
        // Data EN has acknowledged (its latest ACK on the wire covers it).
        const acked = f.up.at(-1)!.raw.readUInt32BE(28);
        const old = f.down.filter((p) => {
          const s = parseSegment(p.raw);
          return p.payload.length > 0 && ((acked - (s.seq + p.payload.length)) | 0) >= 0;
        });
        const replays = old.slice(-10);
        await a.send('attacker', [
          ...Array.from({ length: 3 }, () => request.raw.subarray(0, request.length)),
          ...replays.map((p) => p.raw.subarray(0, p.length)),
          ...Array.from({ length: 3 }, () =>
            fromSource(request.raw.subarray(0, request.length), ADDR.attacker),
          ),
          syn.raw.subarray(0, syn.length),
        ]);
        n = replays.length;
      });
      t.equal(r.sha, a.big.sha, intact);
      t.ok(
        r.gw['old-data']! >= 3,
        `the gateway passed the replayed request as a bare header (old-data +${r.gw['old-data']})`,
      );
      t.ok(
        r.en['old-data']! >= n,
        `the agent passed ${n} replayed data segments bare (old-data +${r.en['old-data']})`,
      );
      t.equal(r.gw['wrong-source'], 3, 'copies from the attacker’s own address are wrong-source');
      t.equal(r.gw['syn-replay'], 1, 'the SYN replayed on the established connection is refused');
      const requests = r.caps.in1.filter((p) => p.payload.includes(Buffer.from('GET /big.bin')));
      t.equal(requests.length, 1, 'intra1 receives the request exactly once');
      const syns = r.caps.in1.filter((p) => p.dport === 80 && (p.flags! & TCP.SYN) !== 0);
      t.equal(syns.length, 1, 'and one SYN');
    },
  );

  await t.test('a replayed SYN after the connection closed is refused (closed)', async (t) => {
    let syn: Buffer | undefined;
    let [closedAt, t0] = [0, 0];
    const r = await during(
      t,
      async (f, _net, d) => {
        const s = f.up.find((p) => (p.flags! & TCP.SYN) !== 0)!;
        syn = Buffer.from(s.raw.subarray(0, s.length));
        await d.done;
        closedAt = Date.now();
        await new Promise((r) => setTimeout(r, 500)); // the FINs cross both ways
        t0 = Date.now();
        await a.send('attacker', [syn, syn, syn]);
      },
      false,
    );
    t.equal(r.sha, a.big.sha, intact);
    t.ok(syn, 'the SYN was captured');
    t.equal(r.gw.closed, 3, 'every replay is refused: the connection is closed');
    const late = r.caps.in1.filter((p) => p.dport === 80 && (p.flags! & TCP.SYN) !== 0);
    t.equal(
      late.length,
      1,
      `intra1 saw only the original SYN (replayed ${t0 - closedAt} ms after the download ended)`,
    );
  });

  await t.test(
    'forged ICMP errors: MTUs below the floor and errors quoting no segment in flight are dropped',
    async (t) => {
      const r = await during(t, async (f) => {
        const down = lastData(f.down).raw;
        const up = f.up.at(-1)!.raw;
        // The quote with a sequence number far from anything in flight.
        const bogus = (p: Buffer) => {
          const q = Buffer.from(p.subarray(0, 28));
          q.writeUInt32BE((q.readUInt32BE(24) + 0x7000_0000) >>> 0, 24);
          return q;
        };
        await a.send('attacker', [
          // To the gateway, about our download: MTU 560 (a valid quote), and unreachable (a bogus one).
          icmpError(ADDR.attacker, ADDR.gwWan, 3, 4, 560, down),
          icmpError(ADDR.attacker, ADDR.gwWan, 3, 1, 0, bogus(down)),
          // To alice's PC through her home router, about her ACKs.
          icmpError(ADDR.attacker, ADDR.hrWan, 3, 4, 560, up),
          icmpError(ADDR.attacker, ADDR.hrWan, 3, 1, 0, bogus(up)),
        ]);
      });
      t.equal(r.sha, a.big.sha, intact);
      t.same([r.gw['icmp-mtu-floor'], r.gw['icmp-invalid']], [1, 1], 'at the gateway');
      t.same([r.en['icmp-mtu-floor'], r.en['icmp-invalid']], [1, 1], 'at the agent');
      const route = (await a.lab.exec('in1', ['ip', '-4', 'route', 'get', ADDR.gwLan])).stdout;
      t.notMatch(route, /mtu/, `intra1 keeps its path MTU toward the gateway: ${route.trim()}`);
      t.equal(r.caps.in1.filter((p) => p.proto === 1).length, 0, 'no ICMP reaches intra1');
    },
  );

  await t.test(
    'a LAN address posing from the internet is dropped by reverse-path filtering before any queue',
    async (t) => {
      const rpf = async () => {
        const out = (await a.lab.exec('gw', ['iptables', '-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n']))
          .stdout;
        const line = out.split('\n').find((l) => l.includes('rpfilter') && l.includes('wan0'));
        return Number(line?.trim().split(/\s+/)[0] ?? NaN);
      };
      // The lab's office edge drops everything from the internet not addressed to GGR; without it,
      // only GSRA's own rules stand between the attacker and the LAN side's queue.
      const edge = ['-i', 'wan0', '!', '-d', ADDR.gwWan, '-j', 'DROP'];
      await a.lab.exec('gw', ['iptables', '-t', 'raw', '-D', 'PREROUTING', ...edge]);
      await a.lab.exec('attacker', ['ip', 'route', 'replace', '10.0.0.0/24', 'via', ADDR.gwWan]);
      t.teardown(async () => {
        await a.lab.exec('gw', ['iptables', '-t', 'raw', '-I', 'PREROUTING', '1', ...edge], {
          allowFail: true,
        });
        await a.lab.exec('attacker', ['ip', 'route', 'del', '10.0.0.0/24'], { allowFail: true });
      });
      let before = 0;
      const r = await during(t, async (f) => {
        before = await rpf();
        const down = parseSegment(lastData(f.down).raw);
        // As intra1 answering on the flow: PIN:d -> PGR:t, 333 bytes of zeros.
        const spoof = buildSegment({
          ...down,
          src: ADDR.in1,
          sport: 80,
          dst: ADDR.gwLan,
          dport: f.t,
          options: withoutPccom(down.options),
          payload: Buffer.alloc(333),
        });
        await a.send(
          'attacker',
          Array.from({ length: 5 }, () => spoof),
        );
      });
      t.equal(r.sha, a.big.sha, intact);
      t.equal((await rpf()) - before, 5, 'the strict reverse-path rule on wan0 dropped all five');
      const emitted = r.caps.net.filter((p) => p.src === ADDR.gwWan && p.payload.length === 333);
      t.equal(emitted.length, 0, 'the gateway encrypted none of them for alice');
      const sysctl = (await a.lab.exec('gw', ['sysctl', '-n', 'net.ipv4.conf.wan0.rp_filter'])).stdout.trim();
      t.equal(
        sysctl,
        '2',
        'the kernel’s own check stays loose (translated packets carry the other side’s address)',
      );
    },
  );

  await t.test('every drop is in a summary log line of its daemon, none lost', async (t) => {
    const sum = (file: string) =>
      a.g
        .logLines(file)
        .filter((l) => l.message === 'packets dropped')
        .reduce((n, l) => n + Number(l.total), 0);
    const total = (d: Record<string, number>) => Object.values(d).reduce((n, v) => n + v, 0);
    const [gw1, en1] = [total(await a.gatewayDrops()), total(await a.agentDrops())];
    await new Promise((r) => setTimeout(r, 6000)); // one summary period (5 s) after the last attack
    const [gw2, en2] = [total(await a.gatewayDrops()), total(await a.agentDrops())];
    t.ok(gw1 > 0 && en1 > 0, `${gw1} and ${en1} packets refused`);
    const [gwLogged, enLogged] = [sum(a.g.gatewayLog), sum(a.g.agents.en1!.logFile)];
    t.ok(
      gwLogged >= gw1 && gwLogged <= gw2,
      `gsra-gateway logged every refused packet (${gwLogged} of ${gw1}..${gw2})`,
    );
    t.ok(
      enLogged >= en1 && enLogged <= en2,
      `gsra-agent logged every refused packet (${enLogged} of ${en1}..${en2})`,
    );
  });
});
