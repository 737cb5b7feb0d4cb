// Known-answer vectors of docs/protocol.md §15 (protocol version 2). Every value was computed a
// second time, independently, with Python (hmac, hashlib, cryptography's X25519 and HKDF) from
// the formulas in the document — vectors.py beside this file — and matched byte for byte.
import t from 'tap';
import {
  deriveControlKeys,
  deriveFlowKeys,
  deriveSessionSecret,
  encode,
  ephemeralFromPrivate,
  groupProof,
  makeCookie,
  resetToken,
  sealMessage,
  transcriptHash,
  userProof,
  x25519,
} from '../../src/protocol/index.ts';
import { handshakeError } from '../../src/protocol/gateway-handshake.ts';
import { sessionRef } from '../../src/protocol/channel.ts';

const hex = (b: Buffer) => b.toString('hex');
const V = {
  gwPub: 'a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209',
  enPub: 'ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59',
  cookie: 'f917cca32230773dfe90c5246712693d',
  dh: '2ed76ab549b1e73c031eb49c9448f0798aea81b698279a0c3dc3e49fbfc4b953',
  authPrefix:
    '47530203101010101010101010101010101010106ab13b80f917cca32230773dfe90c5246712693d000001a0c4506df4' +
    'ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d590000000105616c6963650573616c6573',
  th: '276b258bf446476c84450c2bf6f7d8870e1009905ec4cf3d0282500ef749972c',
  userProof: 'd90a936c96e7955e04f9c4316e98967f',
  groupProof: 'd670ff89ff599fe28463d59c8f9d5646',
  sessionSecret: '0979daba725cebc5eb20cc29f00e97353a6511eef5f8df5ae662f7b9f2a4b35a',
  ctrlEnToGw: '1e785d8b7b95f9140cfd71e58c82750bd9ac331911fab796820c4c263a53b229',
  ctrlGwToEn: '8e5cbafd8bfea6f7ed589e4d9983be437f89e06c1a4a17258e6a7b855130f0d9',
  keepalive:
    '47530216010203040506070800000000000000010000000000000000000001a0c4506c0016763b4fefc85a8f01511927dd598823',
  resetToken: '2b6374603a73882ea7ea26467ea80156',
  authOk:
    '47530204010203040506070800000000000000010000000000000000000001a0c4506c00000070800019000000782b6374603a73882ea7ea26467ea801566ce1a8b6313049b7c7d6cad4241f9c94',
  statelessReset: '4753020501020304050607080000000000000000000800022b6374603a73882ea7ea26467ea80156',
  flowEnToGw:
    '1ec85f97e857dbadc245f0397c6233b7d058bb5a424c0e2dbeabcf2ec4eb5b6018c244b01acfc3a2d319f966346e062b8e1e0f8223edf67c',
  flowGwToEn:
    '465ac370889f72dd3472fa6a60a5d7c3f114f933ff937279ffde0ce98ce28dc74ff1e5e1792ec62d6f602a1f36deeff7de32a8706503dd57',
};

t.test('handshake key schedule vector', async (t) => {
  const gw = ephemeralFromPrivate(Buffer.alloc(32, 1));
  const en = ephemeralFromPrivate(Buffer.alloc(32, 2));
  t.equal(hex(gw.publicKey), V.gwPub);
  t.equal(hex(en.publicKey), V.enPub);
  const enNonce = Buffer.alloc(16, 0x10);
  const cookie = makeCookie(Buffer.alloc(32, 0x20), '203.0.113.2', 61000, 1790000000, enNonce, gw.publicKey);
  t.equal(hex(cookie), V.cookie);
  const dh = x25519(en.privateKey, gw.publicKey)!;
  t.equal(hex(dh), V.dh);
  t.equal(hex(x25519(gw.privateKey, en.publicKey)!), V.dh, 'both sides agree');
  const auth = encode({
    type: 'AUTH',
    enNonce,
    cookieTime: 1790000000,
    cookie,
    timestamp: 1790000000500,
    enPub: en.publicKey,
    gkVersion: 1,
    user: 'alice',
    group: 'sales',
    userProof: Buffer.alloc(16),
    groupProof: Buffer.alloc(16),
  });
  t.equal(hex(auth.subarray(0, auth.length - 32)), V.authPrefix);
  const th = transcriptHash(gw.publicKey, auth);
  t.equal(hex(th), V.th);
  t.equal(hex(userProof(Buffer.alloc(32, 0xa1), th, dh)), V.userProof);
  t.equal(hex(groupProof(Buffer.alloc(32, 0x11), th, dh)), V.groupProof);
  const ss = deriveSessionSecret(dh, Buffer.alloc(32, 0x11), Buffer.alloc(32, 0xa1), enNonce, cookie, th);
  t.equal(hex(ss), V.sessionSecret);
});

t.test('control keys, message MAC and flow keys vector (session secret = 32 × 0x03)', async (t) => {
  const ss = Buffer.alloc(32, 3);
  const ck = deriveControlKeys(ss);
  t.equal(hex(ck.enToGw), V.ctrlEnToGw);
  t.equal(hex(ck.gwToEn), V.ctrlGwToEn);
  const ka = sealMessage(
    encode({
      type: 'KEEPALIVE',
      sessionId: Buffer.from('0102030405060708', 'hex'),
      seq: 1n,
      ack: 0n,
      timestamp: 1790000000000,
    }),
    ck.enToGw,
  );
  t.equal(hex(ka), V.keepalive);
  const sid = Buffer.from('0102030405060708', 'hex');
  const token = resetToken(Buffer.alloc(32, 0x5e), sid);
  t.equal(hex(token), V.resetToken, 'reset token (reset key = 32 × 0x5e)');
  const authOk = sealMessage(
    encode({
      type: 'AUTH_OK',
      sessionId: sid,
      seq: 1n,
      ack: 0n,
      timestamp: 1790000000000,
      sessionLifetime: 28800,
      keepaliveInterval: 25,
      reservationLifetime: 120,
      resetToken: token,
    }),
    ck.gwToEn,
  );
  t.equal(hex(authOk), V.authOk, 'AUTH_OK carrying it');
  t.equal(
    hex(handshakeError(sessionRef(sid), 'unknown-session', '', { resetToken: token })),
    V.statelessReset,
    'the unknown-session refusal proven by it',
  );
  const f = deriveFlowKeys(ss, 6, 40000, 0);
  t.equal(hex(Buffer.concat([f.enToGw.encKey, f.enToGw.macKey, f.enToGw.ivSalt])), V.flowEnToGw);
  t.equal(hex(Buffer.concat([f.gwToEn.encKey, f.gwToEn.macKey, f.gwToEn.ivSalt])), V.flowGwToEn);
});

t.test('x25519 refuses invalid and small-order peer keys', async (t) => {
  const k = ephemeralFromPrivate(Buffer.alloc(32, 1));
  t.equal(x25519(k.privateKey, Buffer.alloc(32)), null, 'all-zero point');
  t.equal(x25519(k.privateKey, Buffer.alloc(31, 9)), null, 'wrong length');
  const one = Buffer.alloc(32);
  one[0] = 1;
  t.equal(x25519(k.privateKey, one), null, 'small-order point u = 1');
});
