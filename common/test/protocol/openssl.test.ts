// HKDF-SHA256 and HMAC-SHA256 through the native addon (OpenSSL's KDF, several outputs per call;
// the thread's keyed HMAC contexts) give the bytes node:crypto gives, for any key, salt, info,
// data and length; the protocol's own vectors (vectors.test.ts) run through the backend this
// platform uses.
import t from 'tap';
import { createHmac, hkdfSync } from 'node:crypto';
import { CRYPTO_BACKEND, hkdfSha256, hkdfSha256Packed, hmacSha256 } from '../../src/protocol/openssl.ts';
import { deriveFlowKeys, deriveFlowKeysMany } from '../../src/protocol/crypto.ts';
import { native } from '@gsra/native';
import { fuzzRandom } from '../fuzz-random.ts';

const node = (ikm: Buffer, salt: Buffer, info: Buffer, len: number) =>
  Buffer.from(hkdfSync('sha256', ikm, salt, info, len));

t.test('this platform derives with the native addon off Windows', async (t) => {
  t.equal(CRYPTO_BACKEND, process.platform === 'win32' ? 'node-crypto' : 'openssl-native');
});

t.test('native HKDF equals node:crypto over seeded random inputs', async (t) => {
  const r = fuzzRandom(t, 'hkdf');
  let compared = 0;
  for (let round = 0; round < 400; round++) {
    const ikm = r.bytes(1 + r.int(r.int(4) === 0 ? 200 : 64));
    // empty salts half the time: GSRA's flow and control keys use none (RFC 5869: HashLen zeros)
    const salt = r.int(2) === 0 ? Buffer.alloc(0) : r.bytes(1 + r.int(100));
    const infoLen = 1 + r.int(r.int(4) === 0 ? 300 : 40);
    const count = 1 + r.int(r.int(3) === 0 ? 40 : 4);
    const len = 1 + r.int(r.int(8) === 0 ? 255 * 32 : 120);
    const infos = Array.from({ length: count }, () => r.bytes(infoLen));
    const got = hkdfSha256(ikm, salt, infos, len, 'openssl-native');
    const want = infos.map((info) => node(ikm, salt, info, len));
    t.equal(got.length, count);
    for (let i = 0; i < count; i++) {
      if (!got[i]!.equals(want[i]!)) {
        t.fail(
          `round ${round}: ikm ${ikm.length} salt ${salt.length} info ${infoLen} × ${count} len ${len}, #${i} differs`,
        );
        return;
      }
      compared++;
    }
  }
  t.ok(compared >= 400, `${compared} outputs compared byte for byte`);
});

t.test('native HMAC equals node:crypto over seeded random keys and data', async (t) => {
  const r = fuzzRandom(t, 'hmac');
  // a few keys that come back (the thread keeps 8 keyed contexts), fresh ones, long ones (> 64
  // bytes: HMAC hashes them), empty ones; data from empty to several blocks
  const kept = Array.from({ length: 12 }, () => r.bytes(32));
  let compared = 0;
  for (let round = 0; round < 600; round++) {
    const pick = r.int(4);
    const key =
      pick === 0
        ? kept[r.int(kept.length)]!
        : pick === 1
          ? r.bytes(r.int(200))
          : pick === 2
            ? r.bytes(0)
            : r.bytes(32);
    const data = r.bytes(r.int(r.int(4) === 0 ? 1000 : 80));
    const want = createHmac('sha256', key).update(data).digest();
    if (!hmacSha256(key, data, 'openssl-native').equals(want)) {
      t.fail(`round ${round}: key ${key.length} bytes, data ${data.length} bytes differ`);
      return;
    }
    compared++;
  }
  t.equal(compared, 600, 'every MAC the same');
  t.ok(hmacSha256(kept[0]!, Buffer.alloc(3), 'node-crypto').equals(hmacSha256(kept[0]!, Buffer.alloc(3))));
});

t.test('the packed form and the node:crypto backend give the same bytes', async (t) => {
  const r = fuzzRandom(t, 'hkdf-packed');
  const ikm = r.bytes(32);
  const infos = r.bytes(19 * 8);
  const a = hkdfSha256Packed(ikm, Buffer.alloc(0), infos, 19, 56, 'openssl-native');
  const b = hkdfSha256Packed(ikm, Buffer.alloc(0), infos, 19, 56, 'node-crypto');
  t.equal(a.length, 8 * 56);
  t.ok(a.equals(b));
  t.ok(a.subarray(56, 112).equals(node(ikm, Buffer.alloc(0), infos.subarray(19, 38), 56)));
  t.throws(() => hkdfSha256Packed(ikm, Buffer.alloc(0), infos.subarray(0, 20), 19, 56), RangeError);
});

t.test('inputs OpenSSL refuses still get the RFC answer (from node:crypto)', async (t) => {
  const info = Buffer.from('gsra/1 test');
  const empty = Buffer.alloc(0);
  t.ok(
    hkdfSha256(empty, empty, [info], 42, 'openssl-native')[0]!.equals(node(empty, empty, info, 42)),
    'empty IKM',
  );
  const ikm = Buffer.alloc(22, 0x0b);
  t.ok(
    hkdfSha256(ikm, empty, [empty], 42, 'openssl-native')[0]!.equals(node(ikm, empty, empty, 42)),
    'empty info',
  );
  // RFC 5869 A.3: no salt, no info
  t.equal(
    hkdfSha256(ikm, empty, [empty], 42)[0]!.toString('hex'),
    '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  );
  const mixed = hkdfSha256(ikm, empty, [info, Buffer.from('x')], 16, 'openssl-native');
  t.ok(mixed[1]!.equals(node(ikm, empty, Buffer.from('x'), 16)), 'infos of different lengths');
});

t.test('the addon refuses bad arguments with a sentence', async (t) => {
  const n = native();
  const k = Buffer.alloc(32, 1);
  if (process.platform === 'win32') {
    t.throws(() => n.hkdfSha256(k, k, k, 32, 32), /not in the Windows build/);
    return;
  }
  t.throws(() => n.hkdfSha256(Buffer.alloc(0), k, k, 32, 32), /ikm must not be empty/);
  t.throws(() => n.hkdfSha256(k, k, k, 5, 32), /infos must be one or more infos of infoLen/);
  t.throws(() => n.hkdfSha256(k, k, k, 0, 32), /infos must be/);
  t.throws(() => n.hkdfSha256(k, k, k, 32, 0), /outLen must be at least 1/);
  t.throws(() => n.hkdfSha256(k, k, k, 32, 255 * 32 + 1), /outLen must be an integer/);
  t.throws(() => n.hkdfSha256('k' as never, k, k, 32, 32), /ikm must be/);
  t.throws(() => n.hmacSha256(k, 'data' as never), /data must be a Buffer/);
});

t.test('the flow keys of many reservations are those of each alone', async (t) => {
  const r = fuzzRandom(t, 'flow-keys');
  const secret = r.bytes(32);
  const flows = Array.from({ length: 16 }, (_, i) => ({
    proto: r.int(2) ? 6 : 17,
    t: r.int(65536),
    serial: 1000 + i,
  }));
  const many = deriveFlowKeysMany(secret, flows);
  t.equal(many.length, 16);
  for (const [i, f] of flows.entries()) t.same(many[i], deriveFlowKeys(secret, f.proto, f.t, f.serial));
  t.same(deriveFlowKeysMany(secret, []), []);
});
