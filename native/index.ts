// @gsra/native: the typed TypeScript API of the GSRA packet engine (Rust, N-API).
// The data-plane format is specified in docs/pccom.md; this file is the API the agent and the
// gateway build on. Keys arrive as raw bytes (derived by the control protocol); the engine never
// logs them.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Proto = 'tcp' | 'udp';
/** 'out' = taken on the local side (applications on EN; the LAN at the gateway), 'in' = from the internet. */
export type Hook = 'out' | 'in';

/** Keys for one direction of one flow. */
export interface DirectionKeys {
  /** AES-128-CTR key, 16 bytes. */
  encKey: Uint8Array;
  /** HMAC-SHA256 key, 32 bytes. */
  macKey: Uint8Array;
  /** The first 8 bytes of every AES-CTR counter block. */
  ivSalt: Uint8Array;
}

export interface Timeouts {
  tcpHandshakeMs?: number;
  tcpEstablishedMs?: number;
  tcpClosingMs?: number;
  udpIdleMs?: number;
  /** Unbound gateway reservations. */
  reservationMs?: number;
  /** Held packets (agent) and punted packets waiting for a verdict. */
  heldMs?: number;
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

/** Gateway reservation of port t; binds in-band on the first packet that verifies. tx = GW->EN, rx = EN->GW. */
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
  reason?: string;
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

export type EngineEvent =
  | ({ type: 'held' } & FiveTuple)
  | ({ type: 'held-expired'; count: number } & FiveTuple)
  | { type: 'bound'; id: number; proto: Proto; t: number; ghr: string; m: number; pin: string; d: number }
  | { type: 'expired'; id: number; proto: Proto; t: number; state: FlowState | 'replaced' }
  | {
      type: 'verify-failed';
      id: number | null;
      proto: Proto;
      src: string;
      sport: number;
      dport: number;
      reason: string;
      /** Failures since the last event for this flow (events are rate-limited to 1/s per flow). */
      count: number;
    }
  /** `flow`: the flow id of an ALG punt (gateway, algPorts); null for a punt rule's packet. */
  | { type: 'punt'; id: number; hook: Hook; flow: number | null; packet: Buffer };

export type FlowState = 'reserved' | 'handshake' | 'established' | 'closing' | 'udp';

export interface FlowStats {
  id: number;
  proto: Proto;
  state: FlowState;
  bound: boolean;
  t: number;
  d: number;
  pktsOut: number;
  bytesOut: number;
  pktsIn: number;
  bytesIn: number;
  verifyFailed: number;
  ghr?: string;
  m?: number;
}

export interface EngineStats {
  packets: number;
  translatedOut: number;
  translatedIn: number;
  acceptedPlain: number;
  dropped: number;
  malformed: number;
  fragments: number;
  noFlow: number;
  verifyFailed: number;
  replay: number;
  wrongSource: number;
  portDenied: number;
  noRoom: number;
  cryptoErrors: number;
  held: number;
  heldReleased: number;
  heldFailed: number;
  heldOverflow: number;
  heldExpired: number;
  punted: number;
  puntExpired: number;
  icmpTranslated: number;
  bound: number;
  expired: number;
  eventsDropped: number;
  panics: number;
  flows: number;
  heldNow: number;
  backend: { name: string; [counter: string]: number | string } | null;
}

export interface NfqueueOptions {
  /** One thread per queue; each queue's packets are taken at the given hook. */
  queues: { num: number; hook: Hook }[];
  /** Kernel queue length (default 8192). */
  maxLen?: number;
  /** Packets per recvmmsg (default 64, max 256). */
  batch?: number;
}

export type FailMode = 'rst' | 'unreachable' | 'prohibited' | 'silent';

export const PROCESS_DROP = -1;
export const PROCESS_HELD = -2;
export const PROCESS_PUNTED = -3;

interface NativeBinding {
  abiVersion: number;
  createEngine(o: unknown): unknown;
  addFlow(h: unknown, spec: unknown): void;
  updateFlow(h: unknown, id: unknown, u: unknown): boolean;
  removeFlow(h: unknown, id: unknown): boolean;
  process(h: unknown, p: unknown, hook: unknown): ProcessResult;
  takeReleased(h: unknown): { hook: Hook; packet: Buffer }[];
  processInto(h: unknown, p: unknown, hook: unknown, out: unknown): number;
  failHeld(h: unknown, key: unknown, mode: unknown): number;
  verdict(h: unknown, id: unknown, accept: unknown, replacement: unknown): boolean;
  stats(h: unknown): EngineStats;
  flowStats(h: unknown, id: unknown): FlowStats | null;
  pollEvents(h: unknown): EngineEvent[];
  onEvents(h: unknown, cb: unknown): void;
  startNfqueue(h: unknown, o: unknown): void;
  stop(h: unknown): void;
  sweep(h: unknown): void;
  benchLoop(payloadBytes: unknown, seconds: unknown): { packets: number; seconds: number };
}

const here = dirname(fileURLToPath(import.meta.url));
/** Where the built addon lives (native/build.sh puts it there). */
export const addonPath = join(here, 'gsra_native.node');

let binding: NativeBinding | undefined;
/** Loads the addon (once). Throws with a hint if it has not been built. */
export function native(): NativeBinding {
  if (!binding) {
    if (!existsSync(addonPath)) throw new Error(`${addonPath} is missing: run bash native/build.sh`);
    binding = createRequire(import.meta.url)(addonPath) as NativeBinding;
  }
  return binding;
}

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
    this.#n.addFlow(this.#h, flow);
  }

  /** Gateway: reserves port t; the first packet to GGR:t that verifies binds GHR:m and d ('bound' event). */
  addReservation(r: Reservation): void {
    if (this.role !== 'gateway') throw new Error('addReservation is for the gateway; the agent uses addFlow');
    this.#n.addFlow(this.#h, r);
  }

  /** Rekeys a flow (either direction); false if the id is unknown. */
  updateFlow(id: number, keys: { tx?: DirectionKeys; rx?: DirectionKeys }): boolean {
    return this.#n.updateFlow(this.#h, id, keys);
  }

  /** Removes a flow or reservation; false if the id is unknown. */
  removeFlow(id: number): boolean {
    return this.#n.removeFlow(this.#h, id);
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

  /** Stops the backend; packets still queued are dropped by the kernel (fail closed). */
  stop(): void {
    this.#n.stop(this.#h);
  }

  /** Runs expiry over the whole table now (the data path also expires entries incrementally). */
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

// ---------------------------------------------------------------------------------------------
// iptables rules. Never --queue-bypass: with no engine bound to the queue the kernel drops.

export interface Rule {
  table: 'raw' | 'mangle';
  chain: string;
  args: string[];
}

const tag = (name: string) => ['-m', 'comment', '--comment', `gsra:${name}`];

/**
 * Agent rules (raw table, before conntrack): outbound to the VIN range -> outQueue; inbound
 * from GGR's port range and all ICMP -> inQueue; optionally DNS answers -> dnsQueue (punted).
 */
export function agentRules(o: {
  vinNet: string;
  ggr: string;
  /** GGR's reserved port range, 'lo:hi'. */
  ports: string;
  outQueue: number;
  inQueue: number;
  dnsQueue?: number;
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'agent');
  const q = (n: number) => ['-j', 'NFQUEUE', '--queue-num', String(n)];
  const r: Rule[] = [
    { table: 'raw', chain: 'OUTPUT', args: ['-d', o.vinNet, ...c, ...q(o.outQueue)] },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-s', o.ggr, '-p', 'tcp', '--sport', o.ports, ...c, ...q(o.inQueue)],
    },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-s', o.ggr, '-p', 'udp', '--sport', o.ports, ...c, ...q(o.inQueue)],
    },
    // ICMP errors from any router may quote a translated packet (PMTUD); others pass unchanged.
    { table: 'raw', chain: 'PREROUTING', args: ['-p', 'icmp', ...c, ...q(o.inQueue)] },
  ];
  if (o.dnsQueue !== undefined) {
    r.push({
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-p', 'udp', '--sport', '53', ...c, ...q(o.dnsQueue)],
    });
  }
  return r;
}

/**
 * Gateway rules (raw PREROUTING): to GGR's port range (and ICMP to GGR) from the internet ->
 * inQueue; from the LAN to PGR's port range (and ICMP to PGR) -> outQueue. Translated packets are routed
 * with a local source address, so the interfaces need net.ipv4.conf.<if>.accept_local=1.
 */
export function gatewayRules(o: {
  ggr: string;
  pgr: string;
  ports: string;
  inQueue: number;
  outQueue: number;
  name?: string;
}): Rule[] {
  const c = tag(o.name ?? 'gateway');
  const q = (n: number) => ['-j', 'NFQUEUE', '--queue-num', String(n)];
  return [
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-d', o.ggr, '-p', 'tcp', '--dport', o.ports, ...c, ...q(o.inQueue)],
    },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-d', o.ggr, '-p', 'udp', '--dport', o.ports, ...c, ...q(o.inQueue)],
    },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-d', o.pgr, '-p', 'tcp', '--dport', o.ports, ...c, ...q(o.outQueue)],
    },
    {
      table: 'raw',
      chain: 'PREROUTING',
      args: ['-d', o.pgr, '-p', 'udp', '--dport', o.ports, ...c, ...q(o.outQueue)],
    },
    { table: 'raw', chain: 'PREROUTING', args: ['-d', o.ggr, '-p', 'icmp', ...c, ...q(o.inQueue)] },
    { table: 'raw', chain: 'PREROUTING', args: ['-d', o.pgr, '-p', 'icmp', ...c, ...q(o.outQueue)] },
  ];
}

function iptables(netns: string | undefined, args: string[]): void {
  const argv = netns ? ['netns', 'exec', netns, 'iptables', '-w', ...args] : ['-w', ...args];
  execFileSync(netns ? 'ip' : 'iptables', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Appends the rules (all or nothing: on error the ones already added are removed). */
export function installRules(rules: Rule[], opts: { netns?: string } = {}): void {
  const done: Rule[] = [];
  try {
    for (const r of rules) {
      iptables(opts.netns, ['-t', r.table, '-A', r.chain, ...r.args]);
      done.push(r);
    }
  } catch (e) {
    removeRules(done, opts);
    throw e;
  }
}

/** Deletes the rules; missing rules are ignored. */
export function removeRules(rules: Rule[], opts: { netns?: string } = {}): void {
  for (const r of [...rules].reverse()) {
    try {
      iptables(opts.netns, ['-t', r.table, '-D', r.chain, ...r.args]);
    } catch {
      // already gone
    }
  }
}
