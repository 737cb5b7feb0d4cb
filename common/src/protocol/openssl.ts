// The control protocol's keyed hashes, HKDF-SHA256 (RFC 5869) and HMAC-SHA256 (docs/protocol.md
// §6, §7), and which way to OpenSSL they take.
//
// On Linux, OpenSSL 3 through the native addon (native/src/napi/crypto.rs): HKDF by OpenSSL's own
// KDF, fetched once per thread, several outputs under one IKM and salt in one call (the flow keys
// of a whole RESERVE: both directions of every port; one N-API crossing, one Extract); HMAC by the
// thread's keyed HMAC contexts. node:crypto's hkdfSync cost about 12 µs a key, most of it Node's
// job set-up and OpenSSL's KDF fetch, a third of a gateway's RESERVE; createHmac about 4 µs a MAC
// (docs/performance.md). On Windows, node:crypto: wine 8's bcrypt has no CNG HKDF to test a
// native twin against, and the agent's few MACs gain nothing. Both give the same bytes
// (common/test/protocol/openssl.test.ts compares them over seeded random inputs).

import { createHmac, hkdfSync } from 'node:crypto';
import { native } from '@gsra/native';

export type CryptoBackend = 'openssl-native' | 'node-crypto';

/** The backend this process derives and MACs with. */
export const CRYPTO_BACKEND: CryptoBackend = process.platform === 'win32' ? 'node-crypto' : 'openssl-native';

/** HMAC-SHA256(key, data). */
export function hmacSha256(key: Buffer, data: Buffer, backend: CryptoBackend = CRYPTO_BACKEND): Buffer {
  if (backend === 'openssl-native') return native().hmacSha256(key, data);
  return createHmac('sha256', key).update(data).digest();
}

/**
 * HKDF-SHA256(ikm, salt, info, len) for each info, in order. Every result is `len` bytes; with
 * the native backend they are views of one buffer.
 */
export function hkdfSha256(
  ikm: Buffer,
  salt: Buffer,
  infos: readonly Buffer[],
  len: number,
  backend: CryptoBackend = CRYPTO_BACKEND,
): Buffer[] {
  const [first] = infos;
  if (!first) return [];
  const infoLen = first.length;
  // infos of different lengths, or an empty one (never in GSRA: every info has a label): one by one
  if (infoLen === 0 || infos.some((i) => i.length !== infoLen))
    return infos.map((info) => Buffer.from(hkdfSync('sha256', ikm, salt, info, len)));
  const out = hkdfSha256Packed(
    ikm,
    salt,
    infos.length === 1 ? first : Buffer.concat(infos),
    infoLen,
    len,
    backend,
  );
  return infos.map((_, i) => out.subarray(i * len, (i + 1) * len));
}

/**
 * The same with the infos packed in one buffer, `infoLen` bytes each: the outputs, `len` bytes
 * each, packed in the same order.
 */
export function hkdfSha256Packed(
  ikm: Buffer,
  salt: Buffer,
  infos: Buffer,
  infoLen: number,
  len: number,
  backend: CryptoBackend = CRYPTO_BACKEND,
): Buffer {
  if (infoLen <= 0 || infos.length % infoLen !== 0)
    throw new RangeError('infos must be whole infos of infoLen bytes');
  // An empty IKM (never in GSRA: OpenSSL's KDF refuses a missing key) goes to node:crypto, which
  // gives the RFC's answer for it.
  if (backend === 'openssl-native' && ikm.length > 0 && infos.length > 0)
    return native().hkdfSha256(ikm, salt, infos, infoLen, len);
  const out = Buffer.alloc((infos.length / infoLen) * len);
  for (let i = 0, o = 0; i < infos.length; i += infoLen, o += len)
    out.set(new Uint8Array(hkdfSync('sha256', ikm, salt, infos.subarray(i, i + infoLen), len)), o);
  return out;
}
