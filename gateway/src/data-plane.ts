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
  | { kind: 'verify-failed'; proto: number; t: number; from: string; count: number }
  | { kind: 'ftp-pasv'; t: number; aliasPort: number };

export interface DataPlane {
  /** Start processing packets and install the kernel rules that send them here. */
  start(): void;
  addReservation(r: DataPlaneReservation): void;
  /** Remove a reservation or the flow bound on it. */
  remove(proto: number, t: number): void;
  onEvent(cb: (e: DataPlaneEvent) => void): void;
  stats(): Record<string, number>;
  /** Stop the engine and remove every kernel rule it installed. */
  close(): Promise<void>;
}
