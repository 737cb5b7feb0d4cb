// Constants of the GSRA control protocol, version 2 (docs/protocol.md).

/** "GS": first two bytes of every control message. */
export const MAGIC = 0x4753;
/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 2;
/** Versions this implementation accepts (sent in an unsupported-version error). */
export const SUPPORTED_VERSIONS: readonly number[] = [2];
/**
 * The version an unsupported-version HANDSHAKE_ERROR is written in: HANDSHAKE_ERROR with
 * authKind 0 has kept its layout since version 1, so every agent can read the refusal.
 */
export const REFUSAL_VERSION = 1;
/** Default UDP port of the gateway's control channel on GGR. */
export const DEFAULT_PORT = 4430;
/** No control datagram may be larger than this. */
export const MAX_DATAGRAM = 1200;
/** HELLO is padded to exactly this size so that COOKIE (72 bytes) never amplifies. */
export const HELLO_SIZE = 128;

export const NONCE_LEN = 16;
export const COOKIE_LEN = 16;
export const X25519_PUB_LEN = 32;
export const PROOF_LEN = 16;
export const MAC_LEN = 16;
export const SESSION_ID_LEN = 8;
/** A session's stateless reset token (AUTH_OK; proof of an unknown-session refusal). */
export const RESET_TOKEN_LEN = 16;
export const PREFIX_LEN = 4;

export const MAX_NAME_LEN = 64; // user id, group name
export const MAX_IN_NAME_LEN = 253; // DNS name
export const MAX_TEXT_LEN = 200; // error text
export const MAX_PORTS_PER_RESERVE = 16;

/** Accepted clock difference between the sender's timestamp and the receiver's clock. */
export const TIME_WINDOW_MS = 60_000;
/** The gateway rotates its ephemeral X25519 key (and the cookie epoch) this often. */
export const COOKIE_EPOCH_MS = 60_000;
/** Replay window: a sequence number up to this far below the highest seen is still accepted once. */
export const REPLAY_WINDOW = 64;

/** Retransmission: first timeout, doubled each time, at most this many transmissions in total. */
export const RETRANSMIT_INITIAL_MS = 250;
export const RETRANSMIT_MAX_TRIES = 4;
/**
 * Requests one side keeps unanswered at once (more wait, in order, on the sender). Well inside
 * the replay window and the gateway's cache of answers (32), so a retransmission is always either
 * new to the gateway or answered again from its cache - never refused as too old (a burst of
 * 1 000 connections sends some 2 000 requests).
 */
export const MAX_REQUESTS_IN_FLIGHT = 16;

/** Transport protocol of a flow (IP protocol numbers). */
export const Proto = { TCP: 6, UDP: 17 } as const;
export type ProtoNumber = (typeof Proto)[keyof typeof Proto];
/**
 * A flow's transport is an IANA protocol number everywhere in GSRA's code (on the wire, in the
 * reservation table, at the engine's API); its name is for people only: logs, status, the CLI.
 */
export const protoName = (p: ProtoNumber): 'tcp' | 'udp' => (p === Proto.TCP ? 'tcp' : 'udp');

/**
 * Reason codes: the value carried on the wire (u16) and the name the agent shows / logs.
 * Codes 1-99 are handshake / message-level, 100-199 authorisation decisions, 200-299 resources.
 */
export const Reason = {
  malformed: 1,
  'unsupported-version': 2,
  'bad-cookie': 3,
  'cookie-expired': 4,
  'bad-mac': 5,
  replay: 6,
  'stale-timestamp': 7,
  'unknown-session': 8,
  'session-expired': 9,
  'bad-proof': 10,
  'unknown-user': 100,
  'revoked-user': 101,
  'not-in-group': 102,
  'stale-key-version': 103,
  'unknown-key-version': 104,
  'unknown-in': 105,
  'policy-denied': 106,
  'account-disabled': 107,
  'rate-limited': 200,
  'no-ports': 201,
  'unknown-reservation': 202,
  'not-bound': 203,
  'directory-unavailable': 204,
  internal: 255,
} as const;
export type ReasonName = keyof typeof Reason;

export const reasonName = (code: number): ReasonName | undefined =>
  (Object.keys(Reason) as ReasonName[]).find((k) => Reason[k] === code);

/** Direction labels used in key derivation. */
export const Direction = { EN_TO_GW: 1, GW_TO_EN: 2 } as const;
