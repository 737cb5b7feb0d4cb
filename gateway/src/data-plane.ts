// The boundary between the gateway's control logic and its packet engine. The daemon hands the
// data plane each row of the reservation table as it is made (flow keys, PIN, the one port d an
// FTP data port may reach) and takes it back when the row ends; the data plane reports flows it
// bound in-band, flows that ended, and packets that failed verification. Events name the row by
// its id, so an event about a row that has since ended is recognised as such. An engine that
// exports its flow state (FlowStateHooks) lets a restart carry bound flows on.
// Linux: data-plane-linux.ts (the native engine behind NFQUEUE).
import type { protocol } from '@gsra/common';

type ProtoNumber = protocol.ProtoNumber;

/**
 * What the engine counted of one flow, in the gateway's directions: `toIn` = from EN toward IN
 * (verified), `toEn` = from IN toward EN (protected). `bytes` = whole packets, `payload` =
 * transport payload (what the applications sent). `close`: how its traffic ended as far as the
 * engine saw (a TCP FIN or RST, or its latest packet from the internet failed verification).
 */
export interface FlowCounts {
  state: string;
  close: 'none' | 'fin' | 'rst' | 'verify-failed';
  toIn: { packets: number; bytes: number; payload: number };
  toEn: { packets: number; bytes: number; payload: number };
  verifyFailed: number;
}

export type DataPlaneEvent =
  | { kind: 'bound'; id: number; proto: ProtoNumber; t: number; ghr: string; m: number; d: number }
  /**
   * The engine ended the flow itself (timeout by state): its final counts come with the event.
   * `closedBy`, when the engine knows it: which end sent the first FIN ('in': the internal server
   * closed first, so it holds TIME_WAIT on PGR:t <-> PIN:d; 'en': the PC did).
   */
  | {
      kind: 'flow-expired';
      id: number;
      proto: ProtoNumber;
      t: number;
      reason: string;
      counts?: FlowCounts;
      closedBy?: 'in' | 'en';
    }
  | { kind: 'verify-failed'; proto: ProtoNumber; t: number; from: string; count: number }
  /**
   * Handling one engine event failed (an exception in the ALG, the control logic or the engine's
   * verdict): that event is lost, logged and counted; the rest of its batch is handled.
   */
  | { kind: 'event-failed'; event: string; reason: string };

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
}) => Buffer | undefined | Promise<Buffer | undefined>;
// A promise defers the segment (and every later segment of the same flow, in order) until it
// resolves: the FTP ALG lets a rewritten PASV reply go only once the agent has the alias.

/**
 * A flow's state inside the engine, as the engine exports it for a store (docs/reliability.md,
 * "What the engine must export"): opaque to TypeScript, in a format the engine versions.
 */
export interface EngineFlowState {
  format: number;
  /** base64 */
  data: string;
}

/**
 * What an engine that can carry a bound flow across a restart of the gateway provides. Without
 * it, a restart keeps sessions and unused reservations, and ends bound flows with a word to the
 * agent; with it, bound TCP flows go on (UDP flows end: docs/reliability.md).
 */
export interface FlowStateHooks {
  /**
   * Rows whose engine state changed since the last call, with that state (null: nothing to keep
   * any more) - of every flow, or only of the flows `ids`.
   */
  exportChanged(ids?: number[]): Array<[rowId: number, state: EngineFlowState | null]>;
  /** Installs row r with the state a store kept, instead of add(); throws (why) if the engine refuses it. */
  import(r: protocol.Reservation, state: EngineFlowState): void;
}

export interface DataPlane {
  /** Start processing packets and install the kernel rules that send them here. */
  start(): void;
  /** Install reservation r: the first packet to GGR:t that verifies with r.keys binds the flow. */
  add(r: protocol.Reservation): void;
  /** Remove reservation r, or the flow bound on it. */
  remove(r: protocol.Reservation): void;
  onEvent(cb: (e: DataPlaneEvent) => void): void;
  /** The ALG for flows to the ALG ports (FTP control); without one their segments pass unchanged. */
  setAlg(alg: AlgHandler): void;
  stats(): Record<string, number>;
  /** Packets the engine refused, by reason (docs/pccom.md; native DROP_REASONS). */
  drops?(): Record<string, number>;
  /** What the engine counted of the flow on row `id` so far; undefined when it holds no such flow. */
  flowCounts?(id: number): FlowCounts | undefined;
  /** Present when the engine exports and imports flow state (see FlowStateHooks). */
  readonly flowState?: FlowStateHooks;
  /**
   * Stop the engine. The kernel rules stay (without the engine they drop what they match: the
   * door stays closed, and the LAN's servers never see a reset for a flow a restart carries on)
   * unless `removeRules` (decommissioning: `gsra-gateway remove-rules`).
   */
  close(opts?: { removeRules?: boolean }): Promise<void>;
}
