// The internal zone's public view: every internal host name GSRA knows resolves to the gateway's
// public address (GGR); any other name in the zone is NXDOMAIN; names outside the zone are
// REFUSED (this is not a recursive resolver). AAAA for a known name is an empty NOERROR: GSRA
// maps IPv4 only, and an empty answer makes clients fall back to A at once.
import { createSocket, type Socket } from 'node:dgram';
import { parseDns, buildResponse, DnsError, DNS_TYPE, RCODE, type Logger } from '@gsra/common';

export interface DnsView {
  knownHost(name: string): boolean;
}

export interface DnsResponderOptions {
  zone: string;
  publicAddress: string;
  ttl: number;
  view: DnsView;
  logger: Logger;
  onAnswer?: (rcode: number) => void;
}

/** Answer one query datagram; null when it must be dropped (a response, or not even a header). */
export function answerQuery(msg: Buffer, o: Omit<DnsResponderOptions, 'logger'>): Buffer | null {
  let q;
  try {
    q = parseDns(msg);
  } catch (e) {
    if (!(e instanceof DnsError) || msg.length < 12) return null;
    // Echo the id with FORMERR so the client stops waiting.
    const h = Buffer.alloc(12);
    msg.copy(h, 0, 0, 2);
    h.writeUInt16BE(0x8000 | RCODE.FORMERR, 2);
    return h;
  }
  if (q.response) return null;
  const question = q.questions[0];
  if (q.opcode !== 0 || q.questions.length !== 1 || !question)
    return buildResponse(q, { rcode: RCODE.NOTIMP });
  const zone = o.zone.toLowerCase().replace(/\.$/, '');
  const name = question.name;
  if (name !== zone && !name.endsWith(`.${zone}`)) return buildResponse(q, { rcode: RCODE.REFUSED });
  if (!o.view.knownHost(name)) return buildResponse(q, { rcode: RCODE.NXDOMAIN, aa: true });
  if (question.type === DNS_TYPE.A || question.type === DNS_TYPE.ANY) {
    return buildResponse(q, { a: [o.publicAddress], ttl: o.ttl, aa: true });
  }
  return buildResponse(q, { aa: true }); // NOERROR, no data (AAAA and everything else)
}

export class DnsResponder {
  private sock: Socket | undefined;
  constructor(private o: DnsResponderOptions) {}

  /** Bind and serve; resolves with the bound port (useful with port 0). */
  async listen(address: string, port: number): Promise<number> {
    const sock = createSocket('udp4');
    this.sock = sock;
    sock.on('message', (msg, rinfo) => {
      const reply = answerQuery(msg, this.o);
      if (!reply) return;
      this.o.onAnswer?.(reply.readUInt16BE(2) & 0xf);
      sock.send(reply, rinfo.port, rinfo.address);
    });
    sock.on('error', (e) => this.o.logger.error('dns socket error', { reason: e.message }));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    const bound = sock.address().port;
    this.o.logger.info('dns responder listening', { address, port: bound, zone: this.o.zone });
    return bound;
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}
