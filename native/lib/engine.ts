// The packet engine's API: one Engine per role, its in-memory data path, events, statistics and
// its backend (Linux NFQUEUE, Windows WinDivert); helpers for keys and the benchmark loop.
import { native, type NativeBinding } from './binding.ts';
import type {
  AgentFlow,
  DirectionKeys,
  PoolPort,
  EngineEvent,
  EngineOptions,
  EngineStats,
  FailMode,
  FiveTuple,
  FlowStats,
  Hook,
  Proto,
  NfqueueOptions,
  ProcessResult,
  Reservation,
} from './types.ts';
import type { WinDivertOptions } from './windows.ts';

/** What the compat mode lacks, in the words of the warning it logs (docs/pccom.md §7). */
export const COMPAT_WARNING =
  "GSRA compat mode (the paper's 16-bit keyed checksum): forgeable after about 65 000 tries, no header integrity, no replay protection for UDP, one keystream for every UDP datagram";

export const PROCESS_DROP = -1;
export const PROCESS_HELD = -2;
export const PROCESS_PUNTED = -3;

/** One packet engine: the tables, the PITs and (optionally) a running NFQUEUE backend. */
export class Engine {
  readonly role: 'agent' | 'gateway';
  readonly #n: NativeBinding;
  readonly #h: unknown;

  constructor(options: EngineOptions) {
    this.#n = native();
    this.#h = this.#n.createEngine(options);
    this.role = options.role;
  }

  /** Agent: adds a VAT entry; packets held for its 5-tuple are released translated. */
  addFlow(flow: AgentFlow): void {
    if (this.role !== 'agent') throw new Error('addFlow is for the agent; the gateway uses addReservation');
    if (flow.compat) warnCompat();
    this.#n.addFlow(this.#h, flow);
  }

  /**
   * Gateway: reserves port t for one flow. It binds GHR:m and d from packets that verify ('bound'
   * event: UDP at the first datagram, TCP at the first segment newer than the SYN).
   */
  addReservation(r: Reservation): void {
    if (this.role !== 'gateway') throw new Error('addReservation is for the gateway; the agent uses addFlow');
    if (r.compat) warnCompat();
    this.#n.addFlow(this.#h, r);
  }

  /**
   * The snapshot of every flow that has one (a bound TCP flow): the state it needs to go on after
   * a restart - TCP state, sequence extension, the agent's ISN, the gateway's binding and ALG
   * adjustment; no keys (native/src/engine/snapshot.rs). Opaque bytes, format byte first.
   */
  flowSnapshots(): { id: number; snapshot: Buffer }[] {
    return this.#n.flowSnapshots(this.#h);
  }

  /** The snapshot of flow `id`, or null (unknown id, or a flow without one). */
  flowSnapshot(id: number): Buffer | null {
    return this.#n.flowSnapshot(this.#h, id);
  }

  /**
   * A restart: installs a flow (agent VAT entry or gateway reservation, as addFlow /
   * addReservation take it) with the state a snapshot kept. Throws, with the reason, if the
   * snapshot does not fit the flow.
   */
  importFlow(flow: AgentFlow | Reservation, snapshot: Uint8Array): void {
    this.#n.importFlow(this.#h, flow, snapshot);
  }

  /** Removes a flow or reservation; false if the id is unknown. */
  removeFlow(id: number): boolean {
    return this.#n.removeFlow(this.#h, id);
  }

  /**
   * Agent: ends a live flow its gateway lost so that the application hears at once - a TCP
   * connection is reset even while it only waits for data (docs/pccom.md §11.1). False if the id
   * is unknown.
   */
  resetFlow(id: number): boolean {
    if (this.role !== 'agent') throw new Error('resetFlow is for the agent');
    return this.#n.resetFlow(this.#h, id);
  }

  /** In-memory data path: one IPv4 packet taken at `hook`. */
  process(packet: Uint8Array, hook: Hook): ProcessResult {
    return this.#n.process(this.#h, packet, hook);
  }

  /**
   * Allocation-free form of process(): the result is written into `out` (give it 64 KiB, or at
   * least the packet length + 20). Returns the packet length (accept), or PROCESS_DROP (-1),
   * PROCESS_HELD (-2), PROCESS_PUNTED (-3). `out` may be the same buffer as `packet`.
   */
  processInto(packet: Uint8Array, hook: Hook, out: Uint8Array): number {
    return this.#n.processInto(this.#h, packet, hook, out);
  }

  /** In-memory mode: packets released later (held packets translated, RST/ICMP made by failHeld, punt verdicts). */
  takeReleased(): { hook: Hook; packet: Buffer }[] {
    return this.#n.takeReleased(this.#h);
  }

  /**
   * Agent: arms pooled port t for new flows to `vin` (engine/pool.rs): the first packet of a new
   * flow (TCP initial SYN, UDP datagram) takes the oldest valid one and leaves at once; a
   * 'pool-taken' event follows. Adding a port already pooled for the same VIN updates it.
   */
  poolAdd(port: PoolPort): void {
    this.#n.poolAdd(this.#h, port);
  }

  /**
   * Agent: port t's reservation was renewed: it may be taken for `validMs` from now. True if it is
   * still pooled; false if a flow took it (then it is not pooled again, as poolAdd would).
   */
  poolRenew(proto: Proto | 6 | 17, t: number, validMs: number): boolean {
    return this.#n.poolRenew(this.#h, proto, t, validMs);
  }

  /** Agent: takes port t back; true if it was still pooled, false if a flow took it ('pool-taken'). */
  poolWithdraw(proto: Proto | 6 | 17, t: number): boolean {
    return this.#n.poolWithdraw(this.#h, proto, t);
  }

  /** Agent: withdraws every pooled port; returns how many there were. */
  poolClear(): number {
    return this.#n.poolClear(this.#h);
  }

  /** Agent: new connections to vin:d are held for TypeScript (`on`: an FTP alias), or not any more. */
  poolExclude(vin: string, d: number, on: boolean): void {
    this.#n.poolExclude(this.#h, vin, d, on);
  }

  /** Fails the packets held for a 5-tuple (as reported by the 'held' event); answers the application. */
  failHeld(key: FiveTuple, mode: FailMode): number {
    return this.#n.failHeld(this.#h, key, mode);
  }

  /**
   * Verdict on a punted packet. A punt rule's replacement must have the same length and passes as
   * it is. An ALG punt's replacement is the same segment (ports, seq, ack, flags unchanged) with a
   * payload up to 64 bytes longer or any amount shorter: the engine records the length change,
   * adjusts the flow's sequence and ack numbers from then on, and translates the packet.
   * Checksums are rewritten. Throws (and drops the packet) on a replacement that breaks the rules.
   */
  verdict(puntId: number, accept: boolean, replacement?: Uint8Array): boolean {
    return this.#n.verdict(this.#h, puntId, accept, replacement);
  }

  stats(): EngineStats {
    return this.#n.stats(this.#h);
  }

  flowStats(id: number): FlowStats | null {
    return this.#n.flowStats(this.#h, id);
  }

  /** Takes the queued events (alternative to onEvents). */
  pollEvents(): EngineEvent[] {
    return this.#n.pollEvents(this.#h);
  }

  /** Events are delivered in batches on the JS thread (thread-safe function; does not keep node alive). */
  onEvents(cb: (events: EngineEvent[]) => void): void {
    this.#n.onEvents(this.#h, cb);
  }

  /** Starts the Linux NFQUEUE backend (needs CAP_NET_ADMIN). Install the rules with installRules(). */
  startNfqueue(options: NfqueueOptions): void {
    this.#n.startNfqueue(this.#h, options);
  }

  /**
   * Starts the Windows WinDivert backend (administrator; WinDivert.dll and WinDivert64.sys in
   * `dir`, an absolute path). Throws a sentence a teleworker can act on when WinDivert cannot
   * be opened (not administrator, driver files missing, signature refused, driver blocked…).
   */
  startWinDivert(options: WinDivertOptions): void {
    this.#n.startWinDivert(this.#h, options);
  }

  /**
   * Stops the backend, failing closed: NFQUEUE's kernel drops what is still queued; WinDivert
   * re-injects it unmodified, into the guard handle that drops VIN-bound packets (closed last).
   */
  stop(): void {
    this.#n.stop(this.#h);
  }

  /** Runs expiry over the whole table now (the data path also expires entries incrementally). */
  /**
   * Agent: flow `id` (or, without an id, every live flow) sends a probe now (docs/pccom.md §6.1):
   * a verifying packet the gateway re-binds on and consumes. Returns how many probes left.
   */
  probe(id?: number): number {
    return this.#n.probe(this.#h, id ?? null);
  }

  sweep(): void {
    this.#n.sweep(this.#h);
  }
}

/**
 * Benchmark helper: one TCP flow, agent 'out' + gateway 'in' per packet, looped inside the engine
 * (no N-API call per packet), as the NFQUEUE backend drives it. Returns packets and seconds taken.
 */
export function benchLoop(payloadBytes: number, seconds: number): { packets: number; seconds: number } {
  return native().benchLoop(payloadBytes, seconds);
}

/** Maps the control protocol's FlowKeys to the engine's tx/rx for a role. */
export function directionKeys(
  role: 'agent' | 'gateway',
  keys: { enToGw: DirectionKeys; gwToEn: DirectionKeys },
): { tx: DirectionKeys; rx: DirectionKeys } {
  return role === 'agent' ? { tx: keys.enToGw, rx: keys.gwToEn } : { tx: keys.gwToEn, rx: keys.enToGw };
}

/** Every flow added in compat mode is logged: a process warning (code GSRA_COMPAT_MODE, on stderr by default). */
function warnCompat(): void {
  process.emitWarning(COMPAT_WARNING, { code: 'GSRA_COMPAT_MODE' });
}

/** Ids of the flows the agent engine makes from its pool start here (TypeScript's own start at 1). */
export const POOL_FIRST_ID = 0x8000_0000;
