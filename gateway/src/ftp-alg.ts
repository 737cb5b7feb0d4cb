// The gateway's FTP ALG. It sees the plaintext of every FTP control connection (the engine punts
// each segment: IN -> EN before protection, EN -> IN after verification) and:
//  - on `227 ... (h1,h2,h3,h4,p1,p2)` (PASV): reserves the data port for this session (the
//    paper's alias list: FTP_ALIAS to the agent, sent before the reply itself) and rewrites the
//    address to the VIN the agent uses for the IN. The reply usually grows (10.0.0.11 ->
//    198.19.230.117); the engine adjusts TCP sequence and ack numbers for the rest of the flow.
//  - on `229 ... (|||port|)` (EPSV): reserves the data port; nothing to rewrite.
//  - refuses active mode: a PORT/EPRT/LPRT command is turned into a NOOP of the same length (the
//    server never connects out to EN, which it could not reach anyway), and the server's answer
//    to it is replaced by `502 GSRA: active FTP (PORT/EPRT) is not available; use passive mode`.
// Lines split across segments are not reassembled (servers write each reply line at once); such a
// reply passes unchanged, which costs only the data connection a PASV-trusting client would open.
// Every decision is made once per position: a line is remembered by the sequence number it starts
// at, so a retransmission — also one that the sender coalesced or split differently — gets exactly
// the bytes decided the first time for every line it repeats (PCCOM would encrypt other bytes at
// the same position under another synthetic IV, safely, but EN's TCP must never see a position
// change its content; docs/pccom.md §4.5).
import type { Logger } from '@gsra/common';

/** What the ALG needs from the daemon for the control connection on reserved port `ctrlT`. */
export interface FtpAlgDeps {
  /** The control flow's reservation: who, which IN, and the VIN the agent gave (RESERVE). */
  flow(ctrlT: number): { user: string; group: string; inName: string; vin?: string } | undefined;
  /** Reserves data port `aliasPort` on PIN for the flow's session (FTP_ALIAS). False if refused. */
  alias(ctrlT: number, aliasPort: number): boolean;
  log: Logger;
  now?: () => number;
}

export const ACTIVE_MODE_REFUSAL = '502 GSRA: active FTP (PORT/EPRT) is not available; use passive mode.';
/** The same refusal when the long one would make the segment grow past ALG_MAX_GROWTH. */
export const SHORT_REFUSAL = '502 Use PASV.';
/**
 * How much longer the ALG may make one segment toward EN: the engine's limit (ALG_MAX_GROWTH in
 * native/src/engine/punt.rs), which refuses — and drops — a longer rewrite.
 */
export const ALG_MAX_GROWTH = 64;

/** A retransmitted PASV reply within this long reuses the alias made for it. */
const ALIAS_REUSE_MS = 10_000;

interface ControlState {
  /** aliasPort -> when it was reserved (a retransmitted reply must not reserve again). */
  aliases: Map<number, number>;
  /** Answers still to replace: the server's replies to commands the ALG turned into NOOP. */
  refusals: number;
  /**
   * Lines already decided, by direction and the sequence number they start at, with what was sent
   * for them: a retransmission gets exactly the same bytes (and counts nothing twice).
   */
  seen: Map<string, string>;
}

/** Lines remembered per control connection (FTP control traffic is a few lines at a time). */
const SEEN_MAX = 64;

const PASV_ADDR = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/;
const EPSV_PORT = /\(([\x21-\x7e])\1\1(\d{1,5})\1\)/;
const ACTIVE_CMD = /^(PORT|EPRT|LPRT)(\s|$)/i;

/** Splits a segment into lines, each with its CRLF (the last may lack one: an incomplete line). */
function lines(payload: Buffer): string[] {
  const s = payload.toString('latin1');
  const out: string[] = [];
  let at = 0;
  while (at < s.length) {
    const nl = s.indexOf('\n', at);
    const end = nl < 0 ? s.length : nl + 1;
    out.push(s.slice(at, end));
    at = end;
  }
  return out;
}

export class FtpAlg {
  private readonly controls = new Map<number, ControlState>();
  private readonly now: () => number;

  constructor(private readonly deps: FtpAlgDeps) {
    this.now = deps.now ?? Date.now;
  }

  private state(ctrlT: number): ControlState {
    let s = this.controls.get(ctrlT);
    if (!s) {
      s = { aliases: new Map(), refusals: 0, seen: new Map() };
      this.controls.set(ctrlT, s);
    }
    return s;
  }

  /** The control connection on `ctrlT` ended: forget it. */
  end(ctrlT: number): void {
    this.controls.delete(ctrlT);
  }

  /**
   * Maps each complete line of a segment starting at `seq` through `decide`, once per position:
   * a line seen before (a retransmission) gets what was decided for it then. Returns the new
   * payload if any line changed.
   */
  private perLine(
    st: ControlState,
    dir: 's' | 'c',
    seq: number,
    payload: Buffer,
    decide: (line: string) => string,
    fit?: { ctrlT: number; limit: number },
  ): Buffer | undefined {
    let at = 0;
    let changed = false;
    let growth = 0;
    const out = lines(payload).map((line) => {
      const pos = (seq + at) >>> 0;
      at += line.length;
      if (!line.endsWith('\n')) return line;
      // the line's bytes are part of the key: another line at the same position (of the same
      // length) is not a retransmission and must not get this one's rewrite (ALG fuzzer)
      const k = `${dir}${pos}/${line}`;
      let r = st.seen.get(k);
      if (r === undefined) {
        r = decide(line);
        if (st.seen.size >= SEEN_MAX) st.seen.delete(st.seen.keys().next().value as string);
      } else st.seen.delete(k); // seen again: now the most recent (least recently seen go first)
      st.seen.set(k, r);
      // the whole segment stays within the engine's growth limit (ALG fuzzer)
      if (fit && growth + r.length - line.length > fit.limit)
        r = this.shrink(fit.ctrlT, line, r, fit.limit - growth);
      growth += r.length - line.length;
      if (r !== line) changed = true;
      return r;
    });
    return changed ? Buffer.from(out.join(''), 'latin1') : undefined;
  }

  /** A rewrite of `line` that grows by `room` bytes at most: a shorter refusal, or the line as it was. */
  private shrink(ctrlT: number, line: string, r: string, room: number): string {
    const eol = line.endsWith('\r\n') ? '\r\n' : '\n';
    if (r.startsWith(ACTIVE_MODE_REFUSAL)) {
      const short = SHORT_REFUSAL + eol;
      // no room at all: a refusal of the line's own length (a reply line is at least "ddd \n")
      return short.length - line.length <= room ? short : '502 '.padEnd(line.length - eol.length, ' ') + eol;
    }
    this.warn(ctrlT, 'PASV reply not rewritten: the segment would grow past the engine’s limit', {
      reason: 'alg-growth',
    });
    return line;
  }

  /** A segment from the FTP server (IN -> EN) starting at `seq`. Returns the payload to send instead, if changed. */
  fromServer(ctrlT: number, seq: number, payload: Buffer): Buffer | undefined {
    if (payload.length === 0) return undefined;
    const st = this.state(ctrlT);
    return this.perLine(st, 's', seq, payload, (line) => this.reply(ctrlT, st, line), {
      ctrlT,
      limit: ALG_MAX_GROWTH,
    });
  }

  /** One complete reply line: the refusal that replaces an answer to active mode, PASV, EPSV. */
  private reply(ctrlT: number, st: ControlState, line: string): string {
    const eol = line.endsWith('\r\n') ? '\r\n' : '\n';
    if (st.refusals > 0 && /^\d{3} /.test(line)) {
      st.refusals--;
      return ACTIVE_MODE_REFUSAL + eol;
    }
    if (line.startsWith('227 ')) return this.pasv(ctrlT, st, line);
    if (line.startsWith('229 ')) {
      const m = EPSV_PORT.exec(line);
      const port = m ? Number(m[2]) : 0;
      if (port >= 1 && port <= 65535) this.reserve(ctrlT, st, port, 'EPSV');
    }
    return line;
  }

  /** A segment from the FTP client (EN -> IN) starting at `seq`. Returns a same-length payload if changed. */
  fromClient(ctrlT: number, seq: number, payload: Buffer): Buffer | undefined {
    if (payload.length === 0) return undefined;
    const st = this.state(ctrlT);
    return this.perLine(st, 'c', seq, payload, (line) => this.command(ctrlT, st, line));
  }

  /** One complete command line: active mode becomes a NOOP of the same length. */
  private command(ctrlT: number, st: ControlState, line: string): string {
    const cmd = line.replace(/\r?\n$/, '');
    const m = ACTIVE_CMD.exec(cmd);
    if (!m) return line;
    st.refusals++;
    this.warn(ctrlT, 'active FTP refused: the client must use passive mode', {
      command: m[1]!.toUpperCase(),
      reason: 'active-ftp',
    });
    return 'NOOP'.padEnd(cmd.length, ' ') + line.slice(cmd.length);
  }

  private pasv(ctrlT: number, st: ControlState, line: string): string {
    const m = PASV_ADDR.exec(line);
    if (!m) return line;
    const n = m.slice(1, 7).map(Number);
    if (n.some((x) => x > 255)) return line;
    const port = n[4]! * 256 + n[5]!;
    if (port === 0 || !this.reserve(ctrlT, st, port, 'PASV')) return line;
    const f = this.deps.flow(ctrlT);
    if (!f?.vin) {
      this.warn(ctrlT, 'PASV reply not rewritten: the agent gave no VIN for this IN', { reason: 'no-vin' });
      return line;
    }
    const vin = f.vin.split('.').join(',');
    return line.slice(0, m.index) + `${vin},${n[4]},${n[5]}` + line.slice(m.index + m[0].length);
  }

  /** One log line about the control connection on ctrlT, with its user, group and IN. */
  private warn(ctrlT: number, message: string, fields: Record<string, unknown>): void {
    const f = this.deps.flow(ctrlT);
    this.deps.log.warn(message, { user: f?.user, group: f?.group, in: f?.inName, t: ctrlT, ...fields });
  }

  /** Reserves the alias once per announced port (a retransmitted reply reuses it). */
  private reserve(ctrlT: number, st: ControlState, port: number, kind: 'PASV' | 'EPSV'): boolean {
    const now = this.now();
    const at = st.aliases.get(port);
    if (at !== undefined && now - at < ALIAS_REUSE_MS) return true;
    for (const [p, when] of st.aliases) if (now - when >= ALIAS_REUSE_MS) st.aliases.delete(p);
    if (!this.deps.alias(ctrlT, port)) {
      this.warn(ctrlT, `FTP data port not reserved (${kind})`, { aliasPort: port });
      return false;
    }
    st.aliases.set(port, now);
    return true;
  }
}
