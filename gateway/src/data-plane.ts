// The boundary between the gateway's control logic and its packet engine. The daemon tells the
// data plane which ports are reserved (with the flow keys); the data plane reports flows it bound
// in-band, flows that expired and packets that failed verification.
import type { protocol } from '@gsra/common';

type FlowKeys = protocol.FlowKeys;

export interface DataPlaneReservation {
  proto: number;
  /** The reserved port on GGR. */
  t: number;
  keys: FlowKeys;
  /** The internal host the flow may reach (PIN). */
  pin: string;
  /** For FTP data reservations: the only destination port allowed. */
  onlyPort?: number;
}

export type DataPlaneEvent =
  | { kind: 'bound'; proto: number; t: number; ghr: string; m: number; d: number }
  | { kind: 'flow-expired'; proto: number; t: number; reason: string }
  | { kind: 'verify-failed'; proto: number; t: number; from: string; count: number };

/**
 * An application-level gateway's view of one TCP segment of a flow to an ALG port (FTP control):
 * `to-en` = from the server, before protection; `to-in` = from the client, verified and decrypted.
 * Returns the payload to send instead (`to-en`: any length, sequence numbers are adjusted;
 * `to-in`: the same length), or undefined to pass the segment unchanged.
 */
export type AlgHandler = (s: {
  t: number;
  direction: 'to-en' | 'to-in';
  seq: number;
  payload: Buffer;
}) => Buffer | undefined;

export interface DataPlane {
  /** Start processing packets and install the kernel rules that send them here. */
  start(): void;
  addReservation(r: DataPlaneReservation): void;
  /** Remove a reservation or the flow bound on it. */
  remove(proto: number, t: number): void;
  onEvent(cb: (e: DataPlaneEvent) => void): void;
  /** The ALG for flows to the ALG ports (FTP control); without one their segments pass unchanged. */
  setAlg(alg: AlgHandler): void;
  stats(): Record<string, number>;
  /** Stop the engine and remove every kernel rule it installed. */
  close(): Promise<void>;
}
