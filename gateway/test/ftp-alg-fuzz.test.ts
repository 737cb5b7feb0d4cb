// Seeded mutation fuzzer of the FTP ALG: segments built from what FTP servers and clients say
// (PASV/EPSV replies with odd numbers, multi-line replies, PORT/EPRT, retransmissions at old
// sequence numbers) and then mutated. Invariants: nothing throws; toward IN a rewrite keeps the
// length; toward EN a segment grows by ALG_MAX_GROWTH at most (the engine refuses more); a
// retransmitted segment gets exactly the same bytes; aliases are real ports. The seed is printed
// (GSRA_FUZZ_SEED replays a run); GSRA_LONG=1 runs 20 times longer.
import t from 'tap';
import { createLogger } from '@gsra/common';
import { Writable } from 'node:stream';
import { ALG_MAX_GROWTH, FtpAlg } from '../src/ftp-alg.ts';
import { fuzzRandom, type FuzzRandom } from '../../common/test/fuzz-random.ts';

const ITERS = (process.env.GSRA_LONG ? 20 : 1) * 60_000;

function serverLine(r: FuzzRandom): string {
  const n = () => String([0, 1, 10, 127, 255, 256, 999, r.int(300)][r.int(8)]);
  const eol = ['\r\n', '\n', ''][r.int(3)]!;
  switch (r.int(7)) {
    case 0:
      return `227 Entering Passive Mode (${Array.from({ length: 6 }, n).join(',')})${eol}`;
    case 1:
      return `227 =${Array.from({ length: 4 + r.int(4) }, n).join(',')}${eol}`;
    case 2: {
      const d = ['|', '!', '#', ' ', '('][r.int(5)]!;
      return `229 Entering Extended Passive Mode (${d}${d}${d}${[0, 1, 65535, 65536, 99999, r.int(70000)][r.int(6)]}${d})${eol}`;
    }
    case 3:
      return `${100 + r.int(500)}${r.int(2) ? '-' : ' '}${'x'.repeat(r.int(80))}${eol}`;
    case 4:
      return `200 OK${eol}`;
    case 5:
      return '200 \n';
    default:
      return r.bytes(r.int(40)).toString('latin1');
  }
}

function clientLine(r: FuzzRandom): string {
  const eol = ['\r\n', '\n', ''][r.int(3)]!;
  return [
    `PORT 10,0,0,${r.int(256)},${r.int(256)},${r.int(256)}${eol}`,
    `EPRT |1|10.0.0.1|${r.int(65536)}|${eol}`,
    `eprt${eol}`,
    `LPRT 4,4,1,2,3,4,2,0,21${eol}`,
    `PASV${eol}`,
    `RETR ${'f'.repeat(r.int(30))}${eol}`,
    r.bytes(r.int(30)).toString('latin1'),
  ][r.int(7)]!;
}

function mutate(r: FuzzRandom, b: Buffer): Buffer<ArrayBuffer> {
  const x = Buffer.from(b);
  for (let k = r.int(4); k > 0 && x.length; k--) x[r.int(x.length)] = r.int(256);
  return r.int(8) === 0 ? x.subarray(0, r.int(x.length + 1)) : x;
}

t.test(
  'FTP ALG mutation fuzz: no throw, lengths within the engine’s limits, retransmissions identical',
  async (t) => {
    const r = fuzzRandom(t, 'FTP ALG fuzz');
    const aliases: number[] = [];
    const alg = new FtpAlg({
      flow: (ctrl) =>
        ctrl % 3
          ? { user: 'alice', group: 'sales', inName: 'intra1.corp.example', vin: '198.19.230.117' }
          : undefined,
      alias: (_ctrl, port) => (aliases.push(port), r.int(5) > 0),
      log: createLogger('gateway', { stream: new Writable({ write: (_c, _e, done) => done() }) }),
      now: () => 1_790_000_000_000 + r.int(100_000),
    });
    /**
     * Per control connection, its last segments, what the ALG made of them, and how many lines it
     * had seen before: the ALG remembers its last 64 lines, so a retransmission must get the same
     * bytes as long as fewer than 64 lines came since.
     */
    const recent = new Map<number, Map<string, { out: Buffer | undefined; mark: number }>>();
    const linesSeen = new Map<number, number>();
    const nl = (b: Buffer) => b.toString('latin1').split('\n').length - 1;
    const fresh = (ctrl: number, mark: number) => (linesSeen.get(ctrl) ?? 0) - mark <= 64;
    let rewritten = 0;
    let maxGrowth = 0;
    for (let i = 0; i < ITERS; i++) {
      const ctrl = 40000 + r.int(4);
      const toEn = r.int(2) === 0;
      const seq = r.int(50) * 100;
      let payload = Buffer.from(
        Array.from({ length: 1 + r.int(12) }, () => (toEn ? serverLine(r) : clientLine(r))).join(''),
        'latin1',
      );
      if (r.int(3) === 0) payload = mutate(r, payload);
      const key = `${toEn}/${seq}/${payload.toString('hex')}`;
      const mine = recent.get(ctrl) ?? new Map<string, { out: Buffer | undefined; mark: number }>();
      recent.set(ctrl, mine);
      const mark = linesSeen.get(ctrl) ?? 0;
      linesSeen.set(ctrl, mark + nl(payload));
      let out: Buffer | undefined;
      try {
        out = toEn ? alg.fromServer(ctrl, seq, payload) : alg.fromClient(ctrl, seq, payload);
      } catch (e) {
        t.fail(
          `threw on ${toEn ? 'server' : 'client'} segment ${payload.toString('hex')}: ${(e as Error).message}`,
        );
        break;
      }
      if (out) {
        rewritten++;
        const growth = out.length - payload.length;
        maxGrowth = Math.max(maxGrowth, growth);
        if (toEn ? growth > ALG_MAX_GROWTH : growth !== 0) {
          t.fail(`growth ${growth} for ${payload.toString('latin1')}`);
          break;
        }
      }
      const before = mine.get(key);
      if (before && fresh(ctrl, before.mark) && before.out?.toString('hex') !== out?.toString('hex')) {
        t.fail(`a retransmission got other bytes: ${payload.toString('latin1')}`);
        break;
      }
      if (!before || !fresh(ctrl, before.mark)) {
        mine.delete(key);
        mine.set(key, { out, mark });
        if (mine.size > 8) mine.delete(mine.keys().next().value!);
      }
      // a retransmission of a recent segment now and then: exactly the same bytes again
      const recentOnes = [...mine].filter(([, v]) => fresh(ctrl, v.mark));
      if (r.int(4) === 0 && recentOnes.length) {
        const [k, { out: was }] = recentOnes[r.int(recentOnes.length)]!;
        const [dir, sq, hex] = k.split('/');
        const seg = Buffer.from(hex!, 'hex');
        linesSeen.set(ctrl, (linesSeen.get(ctrl) ?? 0) + nl(seg)); // a cache miss would add them again
        const again =
          dir === 'true' ? alg.fromServer(ctrl, Number(sq), seg) : alg.fromClient(ctrl, Number(sq), seg);
        if (again?.toString('hex') !== was?.toString('hex')) {
          t.fail(`a retransmission got other bytes: ${JSON.stringify(seg.toString('latin1'))}`, {
            first: was?.toString('latin1'),
            again: again?.toString('latin1'),
          });
          break;
        }
      }
      if (r.int(500) === 0) {
        alg.end(ctrl);
        recent.delete(ctrl);
      }
    }
    t.ok(rewritten > 100, `${rewritten} segments rewritten, growth at most ${maxGrowth} bytes`);
    t.ok(aliases.length > 100, `${aliases.length} aliases asked`);
    t.ok(
      aliases.every((p) => p >= 1 && p <= 65535),
      'every alias a real port',
    );
  },
);

t.test(
  'regression (found by the fuzzer): a PORT refusal on a short reply, with PASV rewrites in one segment, stays within the engine’s limit',
  async (t) => {
    const alg = new FtpAlg({
      flow: () => ({ user: 'alice', group: 'sales', inName: 'intra1.corp.example', vin: '198.19.230.117' }),
      alias: () => true,
      log: createLogger('gateway', { stream: new Writable({ write: (_c, _e, done) => done() }) }),
    });
    alg.fromClient(40000, 1, Buffer.from('PORT 10,0,0,1,4,1\r\n'));
    const reply = Buffer.from('200 OK\r\n' + '227 (1,1,1,1,4,1)\r\n'.repeat(9));
    const out = alg.fromServer(40000, 1, reply)!;
    t.ok(out.length - reply.length <= ALG_MAX_GROWTH, `grew by ${out.length - reply.length}`);
    t.match(out.toString(), /^502 /, 'the PORT answer is still refused');
  },
);

t.test(
  'regression (found by the fuzzer): another segment at the same sequence number and length is not taken for a retransmission',
  async (t) => {
    const alg = new FtpAlg({
      flow: () => ({ user: 'alice', group: 'sales', inName: 'intra1.corp.example', vin: '198.19.230.117' }),
      alias: () => true,
      log: createLogger('gateway', { stream: new Writable({ write: (_c, _e, done) => done() }) }),
    });
    const a = Buffer.from('227 (10,0,0,11,4,1)\r\n');
    const b = Buffer.from('200 (10,0,0,11,4,1)\r\n'); // same length, nothing to rewrite
    t.ok(alg.fromServer(40000, 7, a), 'the PASV reply is rewritten');
    t.equal(
      alg.fromServer(40000, 7, b),
      undefined,
      'the other segment passes as it is, not as the first one’s rewrite',
    );
  },
);
