// Which DNS answers the agent may act on (docs/security.md, "DNS answers"). A forged answer naming
// an internal host would cost a VIN and a RESERVE; so an answer counts only if it answers a query
// the agent saw leave: from the resolver the query went to, from its port 53, to the port the
// query came from, with the query's id and question name. The agent sees the queries for its
// zones leave (native/lib/rules.ts queues them, and their answers); it keeps each for a few
// seconds, at most MAX_PENDING at once (oldest forgotten first: a query flood costs nothing).
import { parseDns, DnsError } from '@gsra/common';

/** A query waits this long for its answer (resolvers retry after about as long). */
export const QUERY_TTL_MS = 10_000;
export const MAX_PENDING = 1024;

export type AnswerCheck =
  | { ok: true; name: string }
  | { ok: false; reason: 'not-a-resolver' | 'no-such-query' | 'question-differs' | 'malformed' };

interface Pending {
  name: string;
  at: number;
}

/** IPv4 + UDP header fields of a packet; throws DnsError when it is not one. */
function udp(packet: Buffer): { src: string; dst: string; sport: number; dport: number; payload: Buffer } {
  if (packet.length < 28 || packet[0]! >> 4 !== 4 || packet[9] !== 17) throw new DnsError('not IPv4/UDP');
  const ihl = (packet[0]! & 15) * 4;
  if (ihl < 20 || packet.length < ihl + 8) throw new DnsError('truncated header');
  const ip = (o: number) => `${packet[o]}.${packet[o + 1]}.${packet[o + 2]}.${packet[o + 3]}`;
  return {
    src: ip(12),
    dst: ip(16),
    sport: packet.readUInt16BE(ihl),
    dport: packet.readUInt16BE(ihl + 2),
    payload: packet.subarray(ihl + 8, Math.min(packet.length, packet.readUInt16BE(2))),
  };
}

export class DnsGuard {
  private readonly pending = new Map<string, Pending>();
  /** Answers refused, by reason (for status and metrics). */
  readonly refused: Record<string, number> = {};

  constructor(
    private readonly o: {
      /** The resolvers the PC asks (empty: any server, port 53). */
      resolvers: string[];
      zones: string[];
      maxPending?: number;
      ttlMs?: number;
    },
  ) {}

  private inZone(name: string): boolean {
    return this.o.zones.some((z) => name === z || name.endsWith(`.${z}`));
  }
  private isResolver(addr: string): boolean {
    return this.o.resolvers.length === 0 || this.o.resolvers.includes(addr);
  }

  /** An outbound packet the agent saw leave; a query for a zone name to a resolver is remembered. */
  query(packet: Buffer, now: number): boolean {
    let q;
    try {
      const u = udp(packet);
      if (u.dport !== 53 || !this.isResolver(u.dst)) return false;
      const m = parseDns(u.payload);
      const question = m.questions[0];
      if (m.response || m.questions.length !== 1 || !question || !this.inZone(question.name)) return false;
      q = { key: `${u.dst}|${u.sport}|${m.id}`, name: question.name };
    } catch (e) {
      if (e instanceof DnsError) return false;
      throw e;
    }
    this.expire(now);
    this.pending.delete(q.key);
    if (this.pending.size >= (this.o.maxPending ?? MAX_PENDING))
      this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(q.key, { name: q.name, at: now });
    return true;
  }

  /** An inbound answer: does it answer a query the agent saw? (The query is then used up.) */
  answer(packet: Buffer, now: number): AnswerCheck {
    const r = this.check(packet, now);
    if (!r.ok) this.refused[r.reason] = (this.refused[r.reason] ?? 0) + 1;
    return r;
  }

  private check(packet: Buffer, now: number): AnswerCheck {
    let u, m;
    try {
      u = udp(packet);
      m = parseDns(u.payload);
    } catch (e) {
      if (e instanceof DnsError) return { ok: false, reason: 'malformed' };
      throw e;
    }
    if (u.sport !== 53 || !this.isResolver(u.src)) return { ok: false, reason: 'not-a-resolver' };
    this.expire(now);
    const key = `${u.src}|${u.dport}|${m.id}`;
    const p = this.pending.get(key);
    if (!p || !m.response) return { ok: false, reason: 'no-such-query' };
    const question = m.questions[0];
    if (m.questions.length !== 1 || question?.name !== p.name)
      return { ok: false, reason: 'question-differs' };
    this.pending.delete(key);
    return { ok: true, name: p.name };
  }

  private expire(now: number): void {
    const ttl = this.o.ttlMs ?? QUERY_TTL_MS;
    for (const [k, p] of this.pending) {
      if (now - p.at < ttl) break; // insertion order is age order
      this.pending.delete(k);
    }
  }

  get size(): number {
    return this.pending.size;
  }
}
