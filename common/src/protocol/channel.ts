// The session channel: how both sides send and accept the messages of an established session
// (docs/protocol.md §4.1, §10). Sending: the next sequence number, the sender's timestamp, the
// MAC under the sender's direction key, and - for requests - retransmission until answered.
// Receiving: the MAC under the peer's key, the ±60 s timestamp window, the 64-wide replay window,
// and (the gateway) the cache of answers that repairs a lost answer without doing anything twice.
// The agent and the gateway each hold one SessionChannel per session; what they do with a
// message is theirs (agent-control.ts, gateway-session.ts).

import { NONCE_LEN, REPLAY_WINDOW, TIME_WINDOW_MS } from './constants.ts';
import { encode } from './codec.ts';
import { constantTimeEqual, sealMessage, verifyMessage } from './crypto.ts';
import type { SessionMessage } from './messages.ts';
import { Retransmitter, type Pending } from './retransmit.ts';

/** Omit that distributes over a union (keeps the discriminant of each member). */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A session message as its sender writes it: the channel fills in the header and the MAC. */
export type Body = DistributiveOmit<SessionMessage, 'sessionId' | 'seq' | 'timestamp' | 'mac'>;

/** The ref of an unknown-session HANDSHAKE_ERROR: the session id, then zeros (§5). */
export const sessionRef = (sessionId: Buffer): Buffer =>
  Buffer.concat([sessionId, Buffer.alloc(NONCE_LEN - sessionId.length)]);

/** Sliding replay window over 64-bit sequence numbers (RFC 4303 §3.4.3 style). */
export class ReplayWindow {
  private highest = 0n;
  private bitmap = 0n; // bit i set = (highest - i) seen
  constructor(private readonly size: number = REPLAY_WINDOW) {}

  /** Would `seq` be accepted? (does not record it) */
  check(seq: bigint): boolean {
    if (seq === 0n) return false;
    if (seq > this.highest) return true;
    const diff = this.highest - seq;
    if (diff >= BigInt(this.size)) return false;
    return (this.bitmap & (1n << diff)) === 0n;
  }

  /** Records `seq` as seen. Call only after the message is authenticated and check() was true. */
  accept(seq: bigint): void {
    if (seq > this.highest) {
      const shift = seq - this.highest;
      this.bitmap =
        shift >= BigInt(this.size) ? 1n : ((this.bitmap << shift) | 1n) & ((1n << BigInt(this.size)) - 1n);
      this.highest = seq;
    } else {
      this.bitmap |= 1n << (this.highest - seq);
    }
  }

  get highestSeen(): bigint {
    return this.highest;
  }

  /** The window as a store keeps it (decimal highest, hex bitmap). */
  save(): { highest: string; bitmap: string } {
    return { highest: this.highest.toString(), bitmap: this.bitmap.toString(16) };
  }
  /** Puts back a window save() returned. */
  restore(w: { highest: string; bitmap: string }): void {
    this.highest = BigInt(w.highest);
    this.bitmap = BigInt(`0x${w.bitmap}`) & ((1n << BigInt(this.size)) - 1n);
  }
}

/**
 * What a channel needs to go on after a restart of its side (docs/reliability.md): its next
 * sequence number, the peer's replay window, and the last answers it sent (so a request whose
 * answer the restart swallowed gets that same answer again, and is not done twice).
 */
export interface ChannelState {
  seq: string;
  window: { highest: string; bitmap: string };
  answers: Array<[seq: string, data: string]>;
}
/** Answers a saved channel keeps: only those of the last moments before a crash matter. */
const SAVED_ANSWERS = 4;

/** What admit() decided about an authentic message. */
export type Admission = 'new' | 'stale-timestamp' | 'duplicate';

/**
 * One session's control channel as one side sees it. `P` is what the side remembers about each
 * request it sent and retransmits (the gateway: the message type; the agent: what it asked for).
 */
export class SessionChannel<P> {
  private seq = 0n;
  private readonly window = new ReplayWindow();
  private readonly answers = new Map<bigint, Buffer>();
  /** Requests sent and not answered yet, by their seq. */
  readonly pending = new Retransmitter<bigint, P>();

  constructor(
    readonly id: Buffer,
    private readonly keys: { send: Buffer; receive: Buffer },
    private readonly answerCacheSize = 0,
    /** Called when the time of the next retransmission may have moved (the gateway's timers). */
    private readonly onTimer: () => void = () => {},
    /** Called whenever what save() returns changed (a store writes the channel again). */
    private readonly onChange: () => void = () => {},
  ) {}

  /** The channel's state for a store. */
  save(): ChannelState {
    const answers = [...this.answers].slice(-SAVED_ANSWERS);
    return {
      seq: this.seq.toString(),
      window: this.window.save(),
      answers: answers.map(([seq, data]) => [seq.toString(), data.toString('base64')]),
    };
  }
  /** Goes on from a saved state (requests pending then are not retransmitted: they are lost). */
  restore(st: ChannelState): void {
    this.seq = BigInt(st.seq);
    this.window.restore(st.window);
    this.answers.clear();
    for (const [seq, data] of st.answers) this.answers.set(BigInt(seq), Buffer.from(data, 'base64'));
  }

  /** This session's id in logs and maps. */
  get idHex(): string {
    return this.id.toString('hex');
  }
  /** The highest sequence number accepted from the peer. */
  get highestSeen(): bigint {
    return this.window.highestSeen;
  }

  /** Encodes and MACs the next message of this side, stamped `timestamp`. */
  seal(body: Body, timestamp: number): Buffer {
    this.seq++;
    this.onChange();
    const m = { ...body, sessionId: this.id, seq: this.seq, timestamp } as SessionMessage;
    return sealMessage(encode(m), this.keys.send);
  }

  /** seal(), and keep the datagram for retransmission until the answer to it is settled. */
  request(body: Body, timestamp: number, info: P, now: number): Buffer {
    const data = this.seal(body, timestamp);
    this.pending.add(this.seq, data, info, now);
    this.onTimer();
    return data;
  }

  /** The request that message `ack` answers, no longer pending; undefined if none is. */
  settle(ack: bigint): Pending<P> | undefined {
    if (ack === 0n) return undefined;
    const p = this.pending.take(ack);
    if (p) this.onTimer();
    return p;
  }

  /** Is this datagram of our session (by id) MACed with the peer's key? */
  belongs(sessionId: Buffer): boolean {
    return constantTimeEqual(sessionId, this.id);
  }
  authentic(data: Buffer): boolean {
    return verifyMessage(data, this.keys.receive);
  }

  /**
   * Admits an authentic message: its timestamp must be within 60 s of `clock` (this side's idea of
   * the sender's clock) and its seq new to the replay window, which then records it.
   */
  admit(m: SessionMessage, clock: number): Admission {
    if (Math.abs(m.timestamp - clock) > TIME_WINDOW_MS) return 'stale-timestamp';
    if (!this.window.check(m.seq)) return 'duplicate';
    this.window.accept(m.seq);
    this.onChange();
    return 'new';
  }
  /** Records the seq of a message accepted outside admit() (AUTH_OK, checked by the handshake). */
  markSeen(seq: bigint): void {
    this.window.accept(seq);
    this.onChange();
  }

  /** Remembers the answer to request `seq` (the last answerCacheSize answers are kept). */
  answer(seq: bigint, data: Buffer): Buffer {
    this.answers.set(seq, data);
    if (this.answers.size > this.answerCacheSize) this.answers.delete(this.answers.keys().next().value!);
    this.onChange();
    return data;
  }
  /** The answer already sent to request `seq`, if still cached (a duplicate gets it again). */
  answered(seq: bigint): Buffer | undefined {
    return this.answers.get(seq);
  }

  /** Due retransmissions and timed-out requests (see Retransmitter). */
  poll(now: number) {
    const due = this.pending.poll(now);
    if (due.resend.length || due.expired.length) this.onTimer();
    return due;
  }
  nextDeadline(): number | null {
    return this.pending.nextDeadline();
  }
  close(): void {
    this.pending.clear();
    this.onTimer();
  }
}
