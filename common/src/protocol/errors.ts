// The one error type the protocol code throws on bad input.

/** Why a datagram was rejected by the decoder (codec-level; never thrown for anything but input). */
export type ProtocolErrorCode =
  | 'too-short' // the datagram ends before a field
  | 'too-long' // larger than MAX_DATAGRAM
  | 'trailing-bytes' // bytes left after the last field
  | 'bad-magic' // first two bytes are not "GS"
  | 'unsupported-version' // version byte is not one we implement
  | 'unknown-type' // type byte is not a known message
  | 'bad-value' // a field is outside its allowed range / enumeration
  | 'bad-string' // a string is empty, too long, not UTF-8, or not in its allowed alphabet
  | 'bad-padding'; // HELLO padding not zero / wrong HELLO length

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    /** Only for unsupported-version: the version byte that was received. */
    readonly version?: number,
  ) {
    super(`${code}: ${message}`);
  }
}
