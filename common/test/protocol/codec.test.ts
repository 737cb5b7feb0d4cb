import t from 'tap';
import {
  decode,
  encode,
  peekPrefix,
  ProtocolError,
  MessageType,
  HELLO_SIZE,
  MAX_DATAGRAM,
  type Message,
  type ProtocolErrorCode,
  PROTOCOL_VERSION,
} from '../../src/protocol/index.ts';
import { samples } from './samples.ts';
import { fuzzRandom } from '../fuzz-random.ts';

type T = Pick<typeof t, 'fail' | 'ok' | 'equal'>;
function rejects(t: T, buf: Buffer, code: ProtocolErrorCode, what: string) {
  try {
    decode(buf);
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(e instanceof ProtocolError, `${what}: ProtocolError`);
    t.equal((e as ProtocolError).code, code, `${what}: ${code}`);
  }
}

t.test('every message type round-trips', async (t) => {
  const seen = new Set<string>();
  for (const m of samples) {
    const buf = encode(m);
    t.ok(buf.length <= MAX_DATAGRAM);
    const back = decode(buf);
    t.same(back, m, `${m.type} round-trips`);
    t.same(encode(back), buf, `${m.type} re-encodes to the same bytes`);
    seen.add(m.type);
  }
  t.same([...seen].sort(), Object.keys(MessageType).sort(), 'samples cover every type');
});

t.test('fixed sizes', async (t) => {
  t.equal(encode(samples[0]!).length, HELLO_SIZE, 'HELLO is padded to 128 bytes');
  t.equal(encode(samples[1]!).length, 72, 'COOKIE is 72 bytes (smaller than HELLO: no amplification)');
  t.equal(
    encode({ type: 'KEEPALIVE', sessionId: Buffer.alloc(8), seq: 1n, ack: 0n, timestamp: 0 }).length,
    52,
  );
});

t.test('every truncation of every sample is rejected with a typed error', async (t) => {
  for (const m of samples) {
    const buf = encode(m);
    for (let n = 0; n < buf.length; n++) {
      try {
        decode(buf.subarray(0, n));
        t.fail(`${m.type} truncated to ${n} accepted`);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
    }
  }
  rejects(t, encode(samples[2]!).subarray(0, 60), 'too-short', 'AUTH cut');
  rejects(t, Buffer.alloc(0), 'too-short', 'empty');
  rejects(t, Buffer.from('GS'), 'too-short', 'prefix cut');
});

t.test('trailing bytes are rejected for every type', async (t) => {
  for (const m of samples) {
    const buf = Buffer.concat([encode(m), Buffer.from([0])]);
    try {
      decode(buf);
      t.fail(`${m.type} with a trailing byte accepted`);
    } catch (e) {
      t.ok(e instanceof ProtocolError);
      // session messages: the extra byte shifts the MAC, so the body has an extra byte
      t.ok(
        ['trailing-bytes', 'bad-value'].includes((e as ProtocolError).code),
        `${m.type}: ${(e as ProtocolError).code}`,
      );
    }
  }
  const ka = encode({ type: 'KEEPALIVE', sessionId: Buffer.alloc(8), seq: 1n, ack: 0n, timestamp: 0 });
  rejects(t, Buffer.concat([ka, Buffer.from([1])]), 'trailing-bytes', 'KEEPALIVE + 1 byte');
  const cookie = encode(samples[1]!);
  rejects(t, Buffer.concat([cookie, Buffer.from([1])]), 'trailing-bytes', 'COOKIE + 1 byte');
});

const hello = encode(samples[0]!);
const withByte = (buf: Buffer, at: number, v: number) => {
  const x = Buffer.from(buf);
  x[at] = v;
  return x;
};

t.test('a datagram without the GS magic is rejected (bad-magic)', async (t) => {
  rejects(t, withByte(hello, 0, 0x48), 'bad-magic', 'magic');
});

t.test('another version is rejected; the error and peekPrefix carry the version', async (t) => {
  for (const version of [1, 3]) {
    const v = withByte(hello, 2, version);
    rejects(t, v, 'unsupported-version', `version ${version}`);
    try {
      decode(v);
    } catch (e) {
      t.equal((e as ProtocolError).version, version, 'error carries the received version');
    }
    t.same(peekPrefix(v), { version, type: 1 });
  }
});

t.test('type codes not in the message table are rejected (unknown-type)', async (t) => {
  for (const ty of [0x00, 0x06, 0x0f, 0x1a, 0x20, 0x7e, 0x80, 0xff])
    rejects(t, withByte(hello, 3, ty), 'unknown-type', `type 0x${ty.toString(16)}`);
});

t.test('a datagram over 1200 bytes is rejected (too-long)', async (t) => {
  rejects(t, Buffer.alloc(MAX_DATAGRAM + 1), 'too-long', 'oversized');
});

t.test('HELLO is exactly 128 bytes with zero padding', async (t) => {
  rejects(t, withByte(hello, 100, 1), 'bad-padding', 'HELLO padding');
  rejects(t, Buffer.concat([hello, Buffer.alloc(1)]), 'trailing-bytes', 'HELLO too long');
  rejects(t, hello.subarray(0, 127), 'too-short', 'HELLO too short');
});

/** Encodes a sample with a field overwritten, bypassing encode()'s own validation. */
function patched(m: Message, offset: number, bytes: number[]): Buffer {
  const buf = encode(m);
  Buffer.from(bytes).copy(buf, offset);
  return buf;
}
const S = 4 + 36 - 4; // body offset of session messages = 36
const sample = <K extends Message['type']>(
  type: K,
  pred: (m: Extract<Message, { type: K }>) => boolean = () => true,
) =>
  samples.find(
    (m): m is Extract<Message, { type: K }> => m.type === type && pred(m as Extract<Message, { type: K }>),
  )!;

t.test('session header: seq 0 and a timestamp beyond 2^53 are rejected', async (t) => {
  const seq0 = encode(sample('RESERVE'));
  seq0.fill(0, 12, 20);
  rejects(t, seq0, 'bad-value', 'seq 0');
  const ts = encode(sample('RESERVE'));
  ts.fill(0xff, 28, 36);
  rejects(t, ts, 'bad-value', 'timestamp beyond 2^53');
});

t.test('RESERVE: proto, count and IN name out of range are rejected', async (t) => {
  const reserve = sample('RESERVE');
  rejects(t, patched(reserve, S, [7]), 'bad-value', 'RESERVE proto 7');
  rejects(t, patched(reserve, S + 1, [0]), 'bad-value', 'RESERVE count 0');
  rejects(t, patched(reserve, S + 1, [17]), 'bad-value', 'RESERVE count 17');
  // RESERVE body: proto S, count S+1, vin S+2..S+5, inName length S+6, inName S+7..
  rejects(t, patched(reserve, S + 7, [0x41]), 'bad-string', 'RESERVE upper-case IN name');
  rejects(t, patched(reserve, S + 7, [0x2e]), 'bad-string', 'RESERVE IN name starting with a dot');
  rejects(t, patched(reserve, S + 6, [200]), 'too-short', 'RESERVE IN name length beyond the datagram');
});

t.test('RESERVED: a duplicate, zero or missing port, or a wrong port count is rejected', async (t) => {
  const reserved = sample('RESERVED');
  t.equal(decode(encode(reserved)).type, 'RESERVED', 'the unpatched sample is valid');
  const nOff = S + 1 + 4 + 4 + 1 + 'intra1.corp.example'.length;
  rejects(t, patched(reserved, nOff + 3, [0x9c, 0x41]), 'bad-value', 'RESERVED duplicate port');
  rejects(t, patched(reserved, nOff + 1, [0, 0]), 'bad-value', 'RESERVED port 0');
  rejects(t, patched(reserved, nOff, [0]), 'trailing-bytes', 'RESERVED zero ports (then trailing)');
  rejects(t, patched(reserved, nOff, [17]), 'too-short', 'RESERVED 17 ports announced');
});

t.test('BOUND and MAP: an unknown address family, t = 0 or d = 0 is rejected', async (t) => {
  rejects(t, patched(sample('BOUND'), S + 3, [5]), 'bad-value', 'BOUND address family 5');
  rejects(t, patched(sample('BOUND'), S + 1, [0, 0]), 'bad-value', 'BOUND t = 0');
  rejects(t, patched(sample('MAP'), S + 3, [0, 0]), 'bad-value', 'MAP d = 0');
});

t.test('RELEASE: scope 2, or a session release naming a port, is rejected', async (t) => {
  const rel = sample('RELEASE', (m) => m.scope === 0);
  rejects(t, patched(rel, S, [2]), 'bad-value', 'RELEASE scope 2');
  rejects(t, patched(rel, S, [1]), 'bad-value', 'RELEASE session with proto/t set');
});

t.test('ERROR: an unknown reason code or a bad text is rejected', async (t) => {
  const err = sample('ERROR');
  rejects(t, patched(err, S, [0x30, 0x39]), 'bad-value', 'ERROR unknown reason code');
  rejects(t, patched(err, S + 3, [0xff]), 'bad-string', 'ERROR text invalid UTF-8');
  rejects(t, patched(err, S + 3, [0x07]), 'bad-string', 'ERROR text control char');
});

t.test('AUTH: an empty user, a control character or invalid UTF-8 in it is rejected', async (t) => {
  const auth = sample('AUTH');
  const userOff = 4 + 16 + 4 + 16 + 8 + 32 + 4;
  rejects(t, patched(auth, userOff, [0]), 'bad-string', 'AUTH empty user');
  rejects(t, patched(auth, userOff + 1, [0x0a]), 'bad-string', 'AUTH user with newline');
  rejects(t, patched(auth, userOff + 1, [0xc3]), 'bad-string', 'AUTH user invalid UTF-8');
});

t.test(
  'HANDSHAKE_ERROR: authKind 3, authKind 2 on a reason other than unknown-session, or a tag on an unauthenticated refusal, is rejected',
  async (t) => {
    const he = sample('HANDSHAKE_ERROR', (m) => m.authKind === 0);
    const heb = encode(he);
    rejects(t, patched(he, heb.length - 17, [3]), 'bad-value', 'HANDSHAKE_ERROR authKind 3');
    rejects(
      t,
      patched(he, heb.length - 17, [2]),
      'bad-value',
      'HANDSHAKE_ERROR authKind 2 (unsupported-version)',
    );
    const reset = {
      type: 'HANDSHAKE_ERROR' as const,
      ref: Buffer.alloc(16, 1),
      reason: 'unknown-session' as const,
      text: '',
      authKind: 2 as const,
      tag: Buffer.alloc(16, 7),
    };
    t.same(decode(encode(reset)), reset, 'authKind 2 with unknown-session carries the reset token');
    rejects(
      t,
      patched(he, heb.length - 1, [1]),
      'bad-value',
      'HANDSHAKE_ERROR unauthenticated with non-zero tag',
    );
  },
);

t.test('FTP_ALIAS: aliasPort 0 is rejected', async (t) => {
  rejects(t, patched(sample('FTP_ALIAS'), S + 2, [0, 0]), 'bad-value', 'FTP_ALIAS aliasPort 0');
});

t.test('RESERVE carries the VIN as 4 bytes (u32, network order) between count and inName', async (t) => {
  const reserve = samples.find((m) => m.type === 'RESERVE')!;
  t.equal(reserve.type === 'RESERVE' && reserve.vin, '198.19.224.7');
  const buf = encode(reserve);
  t.same([...buf.subarray(S, S + 2)], [6, 4], 'proto, count');
  t.equal(buf.readUInt32BE(S + 2), 0xc613e007, 'vin 198.19.224.7 as a big-endian u32');
  t.equal(buf[S + 6], 'intra1.corp.example'.length, 'then the inName length');
  t.equal(buf.subarray(S + 7, S + 7 + 19).toString(), 'intra1.corp.example');
  t.match(decode(buf), {
    type: 'RESERVE',
    proto: 6,
    count: 4,
    vin: '198.19.224.7',
    inName: 'intra1.corp.example',
  });

  const none = { ...reserve, vin: '0.0.0.0' } as Message;
  const nb = encode(none);
  t.equal(nb.readUInt32BE(S + 2), 0, '0.0.0.0 (no VIN) is four zero bytes');
  t.same(decode(nb), none, '0.0.0.0 round-trips');
  t.equal(nb.length, buf.length, 'same size with or without a VIN');

  // any 4 bytes are an IPv4 address: patched vins decode, and re-encode to the same bytes
  for (const [bytes, ip] of [
    [[0, 0, 0, 0], '0.0.0.0'],
    [[255, 255, 255, 255], '255.255.255.255'],
    [[10, 0, 0, 1], '10.0.0.1'],
  ] as const) {
    const p = patched(reserve, S + 2, [...bytes]);
    const m = decode(p);
    t.match(m, { type: 'RESERVE', vin: ip, inName: 'intra1.corp.example' }, `vin bytes ${bytes.join(',')}`);
    t.same(encode(m), p, `${ip} re-encodes to the same bytes`);
  }

  // a body that ends inside the vin
  for (const n of [2, 3, 4, 5]) {
    const cut = Buffer.concat([buf.subarray(0, S + n), Buffer.alloc(16)]);
    rejects(t, cut, 'too-short', `RESERVE body ending after ${n - 2} vin bytes`);
  }
});

t.test('encode refuses a RESERVE whose vin is not a dotted IPv4 address', async (t) => {
  const reserve = samples.find((m) => m.type === 'RESERVE')!;
  const badVins: unknown[] = [
    '300.1.1.1',
    'abc',
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    ' 1.2.3.4',
    '::1',
    '::ffff:1.2.3.4',
    '2001:db8::1',
    undefined,
    null,
    0x01020304,
  ];
  for (const vin of badVins) {
    try {
      encode({ ...reserve, vin } as Message);
      t.fail(`vin ${JSON.stringify(vin)} accepted`);
    } catch (e) {
      t.ok(e instanceof ProtocolError, `vin ${JSON.stringify(vin)}: ProtocolError`);
      t.equal((e as ProtocolError).code, 'bad-value', `vin ${JSON.stringify(vin)}: bad-value`);
    }
  }
  const { vin: _omit, ...noVin } = reserve as Extract<Message, { type: 'RESERVE' }>;
  t.throws(() => encode(noVin as Message), ProtocolError, 'a RESERVE without vin');
});

t.test('encode refuses malformed structures with ProtocolError', async (t) => {
  const bads: unknown[] = [
    { type: 'HELLO', enNonce: Buffer.alloc(15) },
    { ...samples[2]!, user: '' },
    { ...samples[2]!, group: 'x'.repeat(65) },
    { ...samples[2]!, gkVersion: -1 },
    { ...samples.find((m) => m.type === 'RESERVE')!, inName: 'Intra1.corp' },
    { ...samples.find((m) => m.type === 'RESERVE')!, inName: 'a'.repeat(254) },
    { ...samples.find((m) => m.type === 'RESERVE')!, vin: '300.1.1.1' },
    { ...samples.find((m) => m.type === 'RESERVE')!, vin: 'abc' },
    { ...samples.find((m) => m.type === 'RESERVED')!, ports: [] },
    { ...samples.find((m) => m.type === 'RESERVED')!, ports: new Array(17).fill(0).map((_, i) => i + 1) },
    { ...samples.find((m) => m.type === 'BOUND')!, ghr: 'not-an-ip' },
    { ...samples.find((m) => m.type === 'BIND')!, t: 70000 },
    { ...samples.find((m) => m.type === 'ERROR')!, reason: 'nonsense' },
    { ...samples.find((m) => m.type === 'ERROR')!, text: 'x'.repeat(201) },
    { ...samples.find((m) => m.type === 'KEEPALIVE')!, seq: -1n },
    { ...samples.find((m) => m.type === 'KEEPALIVE')!, seq: 0n },
    { ...samples.find((m) => m.type === 'KEEPALIVE')!, sessionId: Buffer.alloc(4) },
  ];
  bads.forEach((m, i) => t.throws(() => encode(m as Message), ProtocolError, `bad structure #${i}`));
});

t.test('fuzz: 120k random and mutated inputs never throw anything but ProtocolError', async (t) => {
  const rnd = fuzzRandom(t, 'codec fuzz');
  const valid = samples.map((m) => encode(m));
  let accepted = 0;
  const counts: Record<string, number> = {};
  const N = 120_000;
  for (let i = 0; i < N; i++) {
    let buf: Buffer;
    const mode = i % 4;
    const base = valid[i % valid.length]!;
    if (mode === 0) {
      // random bytes behind a valid prefix
      buf = rnd.bytes(rnd.int(200));
      if (buf.length >= 4) {
        buf.writeUInt16BE(0x4753, 0);
        buf[2] = PROTOCOL_VERSION;
        buf[3] = Object.values(MessageType)[i % 17]!;
      }
    } else if (mode === 1) {
      // flip 1-4 random bytes of a valid message
      buf = Buffer.from(base);
      for (let k = 0; k < 1 + (i % 4); k++) buf[rnd.int(buf.length)] = rnd.int(256);
      buf[0] = 0x47;
      buf[1] = 0x53;
      buf[2] = PROTOCOL_VERSION;
    } else if (mode === 2) {
      // truncate or extend
      const cut = rnd.int(base.length + 8);
      buf = cut <= base.length ? base.subarray(0, cut) : Buffer.concat([base, rnd.bytes(cut - base.length)]);
    } else {
      buf = rnd.bytes(rnd.int(1300));
    }
    try {
      const m = decode(buf);
      accepted++;
      // anything accepted must re-encode to the very same bytes (canonical encoding)
      if (!encode(m).equals(buf)) t.fail(`non-canonical accept: ${buf.toString('hex')}`);
    } catch (e) {
      if (!(e instanceof ProtocolError)) {
        t.fail(`non-ProtocolError ${String(e)} for ${buf.toString('hex')}`);
        throw e;
      }
      counts[e.code] = (counts[e.code] ?? 0) + 1;
    }
  }
  t.ok(accepted > 0, `some mutated inputs are still valid (${accepted})`);
  t.ok(Object.keys(counts).length >= 6, `many distinct error codes seen: ${JSON.stringify(counts)}`);
});

t.test('the package root re-exports the protocol as a namespace', async (t) => {
  const root = await import('../../src/index.ts');
  t.equal(root.protocol.DEFAULT_PORT, 4430);
  t.equal(typeof root.protocol.GatewayControl, 'function');
  t.equal(typeof root.protocol.AgentControl, 'function');
  t.equal(typeof root.protocol.deriveFlowKeys, 'function');
});

t.test('message sizes are those of the table in docs/protocol.md §5', async (t) => {
  const h = { sessionId: Buffer.alloc(8), seq: 1n, ack: 0n, timestamp: 0 };
  const size = (m: Message) => encode(m).length;
  t.equal(size(samples[2]!), 118 + 'alice'.length + 'sales'.length, 'AUTH');
  t.equal(
    size({
      type: 'HANDSHAKE_ERROR',
      ref: Buffer.alloc(16),
      reason: 'replay',
      text: 'abc',
      authKind: 0,
      tag: Buffer.alloc(16),
    }),
    43,
  );
  t.equal(
    size({
      type: 'AUTH_OK',
      ...h,
      sessionLifetime: 1,
      keepaliveInterval: 1,
      reservationLifetime: 1,
      resetToken: Buffer.alloc(16),
    }),
    78,
  );
  t.equal(size({ type: 'RESERVE', ...h, proto: 6, count: 1, vin: '0.0.0.0', inName: 'abc' }), 62);
  t.equal(size({ type: 'RESERVE', ...h, proto: 6, count: 1, vin: '198.19.224.7', inName: 'abc' }), 62);
  t.equal(
    size({ type: 'RESERVED', ...h, proto: 6, lifetime: 1, serial: 0, inName: 'abc', ports: [1, 2] }),
    70,
  );
  t.equal(size({ type: 'BIND', ...h, proto: 17, t: 1, s: 1 }), 57);
  t.equal(size({ type: 'BOUND', ...h, proto: 17, t: 1, ghr: '1.2.3.4', m: 1, d: 0 }), 64);
  t.equal(size({ type: 'BOUND', ...h, proto: 17, t: 1, ghr: '::1', m: 1, d: 0 }), 76);
  t.equal(size({ type: 'MAP', ...h, proto: 17, t: 1, d: 1, ghr: '1.2.3.4', m: 1 }), 64);
  t.equal(size({ type: 'MAP', ...h, proto: 17, t: 1, d: 1, ghr: '::1', m: 1 }), 76);
  t.equal(size({ type: 'MAPPED', ...h, proto: 17, t: 1, d: 1, lifetime: 1 }), 61);
  t.equal(size({ type: 'KEEPALIVE', ...h }), 52);
  for (const [observed, bytes] of [
    ['198.51.100.7', 65],
    ['2001:db8::7', 77],
  ] as const) {
    const ack = {
      type: 'KEEPALIVE_ACK',
      ...h,
      sessionLifetime: 1,
      reservations: 1,
      observedPort: 5,
    } as const;
    t.equal(size({ ...ack, observed }), bytes);
  }
  t.equal(size({ type: 'RELEASE', ...h, scope: 1, proto: 0, t: 0 }), 56);
  t.equal(size({ type: 'FTP_ALIAS', ...h, ctrlT: 1, aliasPort: 1, dataT: 1, serial: 0, lifetime: 1 }), 66);
  t.equal(size({ type: 'ACK', ...h }), 52);
  t.equal(size({ type: 'ERROR', ...h, reason: 'internal', text: 'abc' }), 58);
  // the largest possible message fits in MAX_DATAGRAM
  const big = size({
    type: 'RESERVED',
    ...h,
    proto: 6,
    lifetime: 1,
    serial: 0,
    inName: ('a'.repeat(63) + '.').repeat(3) + 'a'.repeat(61),
    ports: Array.from({ length: 16 }, (_, i) => i + 1),
  });
  t.ok(big <= MAX_DATAGRAM, `largest RESERVED: ${big} bytes`);
});
