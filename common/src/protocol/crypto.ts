// Cryptography of the GSRA control protocol (docs/protocol.md §6, §7). node:crypto: X25519,
// SHA-256, constant-time comparison; HKDF-SHA256 and HMAC-SHA256 by OpenSSL (openssl.ts: through
// the native addon on Linux, node:crypto on Windows). No hand-written primitives.

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { COOKIE_LEN, Direction, MAC_LEN, PROOF_LEN, RESET_TOKEN_LEN, X25519_PUB_LEN } from './constants.ts';
import { ipToBytes } from './fields.ts';
import { hkdfSha256, hkdfSha256Packed, hmacSha256 } from './openssl.ts';

const LABEL = (s: string) => Buffer.from(`gsra/1 ${s}`, 'ascii');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const hmac = (key: Buffer, ...parts: Buffer[]): Buffer =>
  hmacSha256(key, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const hkdf = (ikm: Buffer, salt: Buffer, info: Buffer, len: number): Buffer =>
  hkdfSha256(ikm, salt, [info], len)[0]!;
const u8 = (v: number) => Buffer.from([v & 0xff]);
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

/** Constant-time equality of two byte strings (false, not an exception, when lengths differ). */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------
// X25519

export interface EphemeralKey {
  privateKey: KeyObject;
  /** 32-byte raw public key (RFC 7748 u-coordinate) as sent on the wire. */
  publicKey: Buffer;
}

export function generateEphemeral(): EphemeralKey {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(der.subarray(der.length - X25519_PUB_LEN)) };
}

/** Imports a 32-byte raw X25519 private key (tests and deterministic fixtures only). */
export function ephemeralFromPrivate(raw: Buffer): EphemeralKey {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(der.subarray(der.length - X25519_PUB_LEN)) };
}

/**
 * X25519 shared secret with a peer's raw public key. Returns null when the peer key is invalid
 * or of small order (all-zero shared secret, RFC 7748 §6.1): the caller refuses the handshake.
 */
export function x25519(own: KeyObject, peerPublic: Buffer): Buffer | null {
  if (peerPublic.length !== X25519_PUB_LEN) return null;
  try {
    const pub = createPublicKey({
      key: Buffer.concat([SPKI_X25519_PREFIX, peerPublic]),
      format: 'der',
      type: 'spki',
    });
    const shared = diffieHellman({ privateKey: own, publicKey: pub });
    if (shared.every((b) => b === 0)) return null;
    return shared;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Stateless cookie

/**
 * cookie = HMAC-SHA256(cookieSecret, "gsra/1 cookie" ‖ addr ‖ u16 port ‖ u32 cookieTime ‖ enNonce ‖
 * gwPub)[0..16]. It binds the client's address and port as the gateway saw them, the time the
 * cookie was made, the EN nonce and the gateway ephemeral public key of that epoch.
 */
export function makeCookie(
  cookieSecret: Buffer,
  addr: string,
  port: number,
  cookieTime: number,
  enNonce: Buffer,
  gwPub: Buffer,
): Buffer {
  return hmac(
    cookieSecret,
    LABEL('cookie'),
    ipToBytes(addr),
    u16(port),
    u32(cookieTime),
    enNonce,
    gwPub,
  ).subarray(0, COOKIE_LEN);
}

// ---------------------------------------------------------------------------------------------
// Handshake key schedule

/**
 * TH = SHA-256("gsra/1 transcript" ‖ gwPub ‖ AUTH bytes up to, not including, userProof).
 * The AUTH prefix covers version, type, enNonce, cookieTime, cookie (the gateway nonce),
 * timestamp, enPub, gkVersion, user and group.
 */
export function transcriptHash(gwPub: Buffer, authBytes: Buffer): Buffer {
  return sha256(LABEL('transcript'), gwPub, authBytes.subarray(0, authBytes.length - 2 * PROOF_LEN));
}

/** userProof = HMAC-SHA256(userSecret, "gsra/1 user-proof" ‖ TH ‖ SHA-256(dh))[0..16] */
export function userProof(userSecret: Buffer, th: Buffer, dh: Buffer): Buffer {
  return hmac(userSecret, LABEL('user-proof'), th, sha256(dh)).subarray(0, PROOF_LEN);
}

/** groupProof = HMAC-SHA256(GK, "gsra/1 group-proof" ‖ TH ‖ SHA-256(dh))[0..16] */
export function groupProof(groupKey: Buffer, th: Buffer, dh: Buffer): Buffer {
  return hmac(groupKey, LABEL('group-proof'), th, sha256(dh)).subarray(0, PROOF_LEN);
}

/**
 * Session secret = HKDF-SHA256(ikm = dh ‖ GK ‖ userSecret, salt = enNonce ‖ cookie,
 * info = "gsra/1 session" ‖ TH, 32 bytes).
 */
export function deriveSessionSecret(
  dh: Buffer,
  groupKey: Buffer,
  userSecret: Buffer,
  enNonce: Buffer,
  cookie: Buffer,
  th: Buffer,
): Buffer {
  return hkdf(
    Buffer.concat([dh, groupKey, userSecret]),
    Buffer.concat([enNonce, cookie]),
    Buffer.concat([LABEL('session'), th]),
    32,
  );
}

export interface ControlKeys {
  /** MAC key of messages EN → gateway. */
  enToGw: Buffer;
  /** MAC key of messages gateway → EN. */
  gwToEn: Buffer;
}

/** ctrl key per direction = HKDF-SHA256(ikm = session secret, salt = "", info = "gsra/1 ctrl" ‖ dir, 32). */
export function deriveControlKeys(sessionSecret: Buffer): ControlKeys {
  const info = (dir: number) => Buffer.concat([LABEL('ctrl'), u8(dir)]);
  const k = hkdfSha256(
    sessionSecret,
    Buffer.alloc(0),
    [info(Direction.EN_TO_GW), info(Direction.GW_TO_EN)],
    32,
  );
  return { enToGw: k[0]!, gwToEn: k[1]! };
}

/** Tag of a HANDSHAKE_ERROR with authKind 1: HMAC-SHA256(userSecret, "gsra/1 refuse" ‖ TH ‖ bytes)[0..16]. */
export function refusalTag(userSecret: Buffer, th: Buffer, bytesBeforeTag: Buffer): Buffer {
  return hmac(userSecret, LABEL('refuse'), th, bytesBeforeTag).subarray(0, MAC_LEN);
}

/**
 * A session's stateless reset token (RFC 9000 §10.3 in spirit):
 * HMAC-SHA256(resetKey, "gsra/1 reset" ‖ sessionId)[0..16]. resetKey is the gateway's own
 * long-term secret (kept across restarts), so a gateway that lost a session can still prove to
 * its agent that it does not know it; nobody else can.
 */
export function resetToken(resetKey: Buffer, sessionId: Buffer): Buffer {
  return hmac(resetKey, LABEL('reset'), sessionId).subarray(0, RESET_TOKEN_LEN);
}

// ---------------------------------------------------------------------------------------------
// Session message MAC (HMAC-SHA256-128 over every byte before the MAC field)

function computeMac(key: Buffer, encoded: Buffer): Buffer {
  return hmac(key, encoded.subarray(0, encoded.length - MAC_LEN)).subarray(0, MAC_LEN);
}

/** Writes the MAC into the last 16 bytes of an encoded session message (in place) and returns it. */
export function sealMessage(encoded: Buffer, key: Buffer): Buffer {
  computeMac(key, encoded).copy(encoded, encoded.length - MAC_LEN);
  return encoded;
}

/** Constant-time check of the MAC in the last 16 bytes of an encoded session message. */
export function verifyMessage(encoded: Buffer, key: Buffer): boolean {
  if (encoded.length < MAC_LEN) return false;
  return constantTimeEqual(computeMac(key, encoded), encoded.subarray(encoded.length - MAC_LEN));
}

// ---------------------------------------------------------------------------------------------
// Per-flow keys for the data plane (docs/pccom.md takes these bytes as they are)

export interface DirectionKeys {
  /** AES-128-CTR key, 16 bytes. */
  encKey: Buffer;
  /** HMAC-SHA256 key, 32 bytes. */
  macKey: Buffer;
  /** 8-byte salt of the CTR IV / per-packet nonce. */
  ivSalt: Buffer;
}
export interface FlowKeys {
  enToGw: DirectionKeys;
  gwToEn: DirectionKeys;
}

/** The label of a flow's key info; the rest (proto, t, serial, direction) is 8 bytes. */
const FLOW_LABEL = LABEL('flow');
const FLOW_INFO_LEN = FLOW_LABEL.length + 8;

/** The flow's reservation: (proto, t, serial) as RESERVED / FTP_ALIAS gave it. */
export interface FlowKeyId {
  proto: number;
  t: number;
  serial: number;
}

/**
 * Per-flow, per-direction keys of reservation (proto, t, serial):
 *   okm = HKDF-SHA256(ikm = session secret, salt = "",
 *                     info = "gsra/1 flow" ‖ u8 proto ‖ u16 t ‖ u32 serial ‖ u8 direction, 56)
 *   encKey = okm[0..16], macKey = okm[16..48], ivSalt = okm[48..56].
 * `serial` is the per-session number the gateway gave the reservation (RESERVED / FTP_ALIAS),
 * so a port t reserved twice in one session never gets the same keys.
 */
export function deriveFlowKeys(sessionSecret: Buffer, proto: number, t: number, serial: number): FlowKeys {
  return deriveFlowKeysMany(sessionSecret, [{ proto, t, serial }])[0]!;
}

/** deriveFlowKeys for several reservations of one session at once (a RESERVE's ports): one HKDF call. */
export function deriveFlowKeysMany(sessionSecret: Buffer, flows: readonly FlowKeyId[]): FlowKeys[] {
  const infos = Buffer.alloc(flows.length * 2 * FLOW_INFO_LEN);
  flows.forEach((f, i) => {
    for (const [j, dir] of [Direction.EN_TO_GW, Direction.GW_TO_EN].entries()) {
      const at = (2 * i + j) * FLOW_INFO_LEN;
      FLOW_LABEL.copy(infos, at);
      let o = at + FLOW_LABEL.length;
      o = infos.writeUInt8(f.proto & 0xff, o);
      o = infos.writeUInt16BE(f.t, o);
      o = infos.writeUInt32BE(f.serial, o);
      infos.writeUInt8(dir, o);
    }
  });
  const okm = hkdfSha256Packed(sessionSecret, Buffer.alloc(0), infos, FLOW_INFO_LEN, 56);
  const dirKeys = (at: number): DirectionKeys => ({
    encKey: okm.subarray(at, at + 16),
    macKey: okm.subarray(at + 16, at + 48),
    ivSalt: okm.subarray(at + 48, at + 56),
  });
  return flows.map((_, i) => ({ enToGw: dirKeys(112 * i), gwToEn: dirKeys(112 * i + 56) }));
}
