// The types of the engine's TypeScript API (native/lib/engine.ts). Counter, drop-reason,
// event-type and flow-state names come from names.generated.ts, which is rendered from the Rust
// declarations.
import type { DropReason, EngineCounter, EngineEventType, FlowClose, FlowState } from './names.generated.ts';

export type Proto = 'tcp' | 'udp';
/** 'out' = taken on the local side (applications on EN; the LAN at the gateway), 'in' = from the internet. */
export type Hook = 'out' | 'in';

/** Keys for one direction of one flow. */
export interface DirectionKeys {
  /** AES-128-CTR key, 16 bytes. */
  encKey: Uint8Array;
  /** HMAC-SHA256 key, 32 bytes. */
  macKey: Uint8Array;
  /**
   * 8 bytes: the first half of the compat mode's AES-CTR counter blocks. The secure mode does not
   * use it (its counter blocks are the synthetic IV T || be32(i), docs/pccom.md §3).
   */
  ivSalt: Uint8Array;
}

export interface Timeouts {
  tcpHandshakeMs?: number;
  tcpEstablishedMs?: number;
  /** One FIN seen (a half-closed connection may be quiet for a while). */
  tcpClosingMs?: number;
  /** FINs both ways or a RST: the connection is over; its port goes back soon (default 5 s). */
  tcpClosedMs?: number;
  udpIdleMs?: number;
  /** Unbound gateway reservations. */
  reservationMs?: number;
  /** Held packets (agent) and punted packets waiting for a verdict. */
  heldMs?: number;
  /**
   * Agent: a live flow that sent nothing for this long sends a probe, keeping the home NAT's
   * mapping (docs/pccom.md §6.1; default 25 000, 0 = never).
   */
  keepaliveMs?: number;
  /** Agent: a TCP flow whose traffic stopped this long ago is probed at this pace for 10 s (default 500, 0 = never). */
  quietProbeMs?: number;
}

/** Packets matching a punt rule go to TypeScript as 'punt' events (e.g. DNS answers: hook 'in', udp, sport 53). */
export interface PuntRule {
  hook: Hook;
  proto: Proto;
  sport?: number;
  dport?: number;
}

interface CommonOptions {
  timeouts?: Timeouts;
  punt?: PuntRule[];
  /**
   * Gateway: service ports whose TCP connections pass through an ALG in TypeScript (FTP: [21]).
   * Every segment such a flow sends toward EN is punted (event 'punt' with its `flow` id) before
   * protection; its verdict may rewrite the payload to another length (see verdict()).
   */
  algPorts?: number[];
  maxHeldPerFlow?: number;
  maxHeldTotal?: number;
  /** ICMP "fragmentation needed" below this MTU is never taken (default 1280, at least 576; docs/pccom.md §8.1). */
  pmtuFloor?: number;
}
export interface AgentOptions extends CommonOptions {
  role: 'agent';
  /** The VIN range, e.g. '100.64.0.0/16': outbound packets into it without a VAT entry are held. */
  vinNet: string;
}
export interface GatewayOptions extends CommonOptions {
  role: 'gateway';
  /** The gateway's global (internet) address. */
  ggr: string;
  /** The gateway's private (LAN) address. */
  pgr: string;
}
export type EngineOptions = AgentOptions | GatewayOptions;

/** Agent VAT entry {PEN:s <-> VIN:d} <=> {PEN:s <-> GGR:t} with its PIT. tx = EN->GW keys, rx = GW->EN keys. */
export interface AgentFlow {
  id: number;
  proto: Proto | 6 | 17;
  pen: string;
  s: number;
  vin: string;
  d: number;
  ggr: string;
  t: number;
  tx: DirectionKeys;
  rx: DirectionKeys;
  /** The paper's 16-bit keyed checksum instead of the MAC option/trailer. Weak; see docs/pccom.md. */
  compat?: boolean;
}

/**
 * Gateway reservation of port t, for one flow (TCP: one connection). Binds in-band from packets that
 * verify: UDP on the first datagram, TCP on the first segment newer than the SYN (docs/pccom.md §6).
 * tx = GW->EN, rx = EN->GW.
 */
export interface Reservation {
  id: number;
  proto: Proto | 6 | 17;
  t: number;
  /** The internal host (PIN) the flow may reach. */
  pin: string;
  /** Allowed destination ports d (empty or absent: any). In compat mode exactly one port, which is d. */
  ports?: number[];
  tx: DirectionKeys;
  rx: DirectionKeys;
  compat?: boolean;
}

export interface ProcessResult {
  verdict: 'accept' | 'drop' | 'held' | 'punted';
  /** The packet to pass on (verdict 'accept'). */
  packet?: Buffer;
  /** Why it was dropped (verdict 'drop'). */
  reason?: DropReason;
  /** The punt id (verdict 'punted'), for verdict(). */
  puntId?: number;
}

export interface FiveTuple {
  proto: Proto;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/**
 * Agent: a port the gateway reserved, armed in the engine (engine/pool.rs) so that a new flow's
 * first packet to `vin` takes it without TypeScript. tx = EN->GW, rx = GW->EN.
 */
export interface PoolPort {
  proto: Proto | 6 | 17;
  vin: string;
  ggr: string;
  t: number;
  /** The serial of its keys, reported back with 'pool-taken'. */
  serial: number;
  tx: DirectionKeys;
  rx: DirectionKeys;
  /** How long from now the engine may still take it. */
  validMs: number;
  compat?: boolean;
}

export type EngineEvent =
  | ({ type: 'held' } & FiveTuple)
  /** Agent: a new flow's first packet took pooled port t; VAT entry `id` exists and the packet left. */
  | ({ type: 'pool-taken'; id: number; t: number; serial: number } & FiveTuple)
  | ({ type: 'held-expired'; count: number } & FiveTuple)
  | { type: 'bound'; id: number; proto: Proto; t: number; ghr: string; m: number; pin: string; d: number }
  /** `close`: how the flow's traffic ended (FIN, RST, verification failures, none); its final counters. */
  | ({
      type: 'expired';
      id: number;
      proto: Proto;
      t: number;
      state: FlowState | 'replaced';
      close: FlowClose;
    } & FlowCounters)
  | {
      type: 'verify-failed';
      id: number | null;
      proto: Proto;
      src: string;
      sport: number;
      dport: number;
      reason: DropReason;
      /**
       * Failures since the last event for this flow (events are rate-limited to 1/s per flow; what
       * is still pending after a second is reported by the engine's sweep).
       */
      count: number;
    }
  /** `flow`: the flow id of an ALG punt (gateway, algPorts); null for a punt rule's packet. */
  | { type: 'punt'; id: number; hook: Hook; flow: number | null; packet: Buffer };

/**
 * A flow's counters. `Out` = protected toward the internet, `In` = verified toward the protected
 * side; `bytes` = whole packets as they left the engine, `payload` = transport payload bytes
 * (what the applications sent: no headers, no MAC; none for a segment passed as its bare header).
 */
export interface FlowCounters {
  pktsOut: number;
  bytesOut: number;
  payloadOut: number;
  pktsIn: number;
  bytesIn: number;
  payloadIn: number;
  verifyFailed: number;
}

export interface FlowStats extends FlowCounters {
  id: number;
  proto: Proto;
  state: FlowState;
  bound: boolean;
  t: number;
  d: number;
  /** How the flow's traffic ended so far (FIN, RST, verification failures of its latest packet, none). */
  close: FlowClose;
  ghr?: string;
  m?: number;
}

/**
 * `stats()`: the engine's counters (names generated from the Rust declarations), refused packets
 * by reason, its table sizes and the backend's counters.
 */
export interface EngineStats extends Record<EngineCounter, number> {
  /** Packets refused, by reason (`old-data`: payloads removed, the bare header passed). */
  drops: Record<DropReason, number>;
  flows: number;
  heldNow: number;
  /** `queues` (NFQUEUE): per queue, packets received and verdicts sent. */
  backend: {
    name: string;
    queues?: { num: number; received: number; verdicts: number }[];
    [counter: string]: number | string | { num: number; received: number; verdicts: number }[] | undefined;
  } | null;
}

export interface NfqueueOptions {
  /** One thread per queue; each queue's packets are taken at the given hook. */
  queues: { num: number; hook: Hook }[];
  /** Kernel queue length (default 8192). */
  maxLen?: number;
  /** Packets per recvmmsg (default 64, max 256). */
  batch?: number;
  /**
   * After a batch, poll the queue without blocking for up to this many µs before sleeping in
   * recvmmsg (default 0: sleep at once; max 1000). Adaptive: an empty poll backs off. Saves a
   * thread wake-up per batch while packets keep coming, at the cost of CPU the other processes
   * on the same cores then lack (docs/performance.md: off by default for that reason).
   */
  spinUs?: number;
  /**
   * Take GSO super-packets whole on the queues at hook 'out' (NFQA_CFG_F_GSO), cut them into
   * segments in user space, protect each and send them in one sendmmsg (default true). A packet
   * the engine cannot take whole falls back to the kernel's segmentation, losslessly. Default
   * false (docs/performance.md: no measurable gain in the lab, and an e2e race seen with it).
   */
  gso?: boolean;
  /**
   * A second thread per queue sends the batch's verdicts (the kernel forwards an accepted packet
   * inside that call), so the reader takes the next batch meanwhile. Not on queues with F_GSO.
   */
  verdictThread?: boolean;
}

export type FailMode = 'rst' | 'unreachable' | 'prohibited' | 'silent';

type SameUnion<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails to type-check when the engine's event types and the EngineEvent union drift apart. */
const _eventTypesMatch: SameUnion<EngineEvent['type'], EngineEventType> = true;
