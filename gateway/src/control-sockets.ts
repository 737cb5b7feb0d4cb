// The gateway's control port as two UDP sockets bound to the same address and port
// (SO_REUSEPORT): both receive (the kernel spreads datagrams over them; each goes to the same
// handler), and each sends one kind of traffic.
// - `priority`: session traffic and answers to proven addresses. Deliverable: nothing waits
//   behind an answer the kernel cannot send.
// - `bulk`: answers to sources that have not shown they receive anything (a COOKIE to a HELLO
//   from anywhere). On Linux a datagram to a neighbour that does not answer ARP stays queued,
//   and charged to its socket's send buffer, for seconds; a flood of spoofed sources on the
//   gateway's own segment fills it. So the bulk socket never queues in user space: when the
//   kernel refuses (libuv then holds the datagram), later bulk answers are shed until it drains.
// The agent only accepts datagrams from the gateway's control address and port: both sockets
// send from it.
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '@gsra/common';

export type SendPath = 'priority' | 'bulk';

export interface ControlSocketsOptions {
  log: Logger;
  onMessage: (data: Buffer, from: { addr: string; port: number }) => void;
  /** Send buffer of the bulk socket (bytes; the kernel doubles it, capped by net.core.wmem_max). */
  bulkSendBuffer?: number;
}

export class ControlSockets {
  private priority: Socket | undefined;
  private bulk: Socket | undefined;
  /** Bulk answers shed because the bulk socket was congested. */
  shedCongested = 0;

  constructor(private readonly o: ControlSocketsOptions) {}

  /** Binds both sockets to `address:port` (port 0: any, the same for both); resolves with the port. */
  async bind(port: number, address: string): Promise<number> {
    const open = async (p: number): Promise<Socket> => {
      const s = createSocket({ type: 'udp4', reusePort: true });
      s.on('message', (msg, rinfo) => this.o.onMessage(msg, { addr: rinfo.address, port: rinfo.port }));
      s.on('error', (e) => this.o.log.error('control socket error', { reason: e.message }));
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(p, address, () => {
          s.off('error', reject);
          resolve();
        });
      });
      return s;
    };
    this.priority = await open(port);
    const bound = this.priority.address().port;
    this.bulk = await open(bound);
    try {
      this.bulk.setSendBufferSize(this.o.bulkSendBuffer ?? 1 << 20);
    } catch (e) {
      this.o.log.warn('control: could not enlarge the bulk send buffer', { reason: (e as Error).message });
    }
    return bound;
  }

  get listening(): boolean {
    return this.priority !== undefined;
  }

  /** Sends on the path's socket; a bulk answer is dropped (false) while that socket is congested. */
  send(data: Buffer, to: { addr: string; port: number }, path: SendPath): boolean {
    const s = path === 'priority' ? this.priority : this.bulk;
    if (!s) return false;
    if (path === 'bulk' && s.getSendQueueCount() > 0) {
      this.shedCongested++;
      return false;
    }
    s.send(data, to.port, to.addr);
    return true;
  }

  /** Datagrams waiting in user space because the kernel refused them (bulk: at most one burst). */
  queued(): { priority: number; bulk: number } {
    return { priority: this.priority?.getSendQueueCount() ?? 0, bulk: this.bulk?.getSendQueueCount() ?? 0 };
  }

  close(): void {
    this.priority?.close();
    this.bulk?.close();
    this.priority = this.bulk = undefined;
  }
}
