// Test helper: drives the agent's protocol state machine (AgentControl) over a real UDP socket,
// so gateway tests talk to the gateway exactly as an agent would. Every datagram sent is kept,
// so a test can replay or tamper with one.
import { createSocket, type Socket } from 'node:dgram';
import { protocol } from '@gsra/common';

type AgentEvent = protocol.AgentEvent;
type AgentOptions = protocol.AgentOptions;
type AgentResult = protocol.AgentResult;

export class AgentDriver {
  readonly agent: protocol.AgentControl;
  readonly sock: Socket;
  readonly sent: Buffer[] = [];
  readonly events: AgentEvent[] = [];
  private waiters: Array<{ pred: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void }> = [];
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    opts: AgentOptions,
    private gw: { addr: string; port: number },
  ) {
    this.agent = new protocol.AgentControl(opts);
    this.sock = createSocket('udp4');
    this.sock.on('message', (m) => this.apply(this.agent.handleDatagram(m, Date.now())));
  }

  static async open(opts: AgentOptions, gw: { addr: string; port: number }): Promise<AgentDriver> {
    const d = new AgentDriver(opts, gw);
    await new Promise<void>((r) => d.sock.bind(0, '127.0.0.1', () => r()));
    return d;
  }

  get port(): number {
    return this.sock.address().port;
  }

  apply(r: AgentResult): void {
    for (const o of r.send) {
      if (o.dest.via !== 'control') continue; // BIND probes use the flow's own socket; not here
      this.sent.push(Buffer.from(o.data));
      this.sock.send(o.data, this.gw.port, this.gw.addr);
    }
    for (const e of r.events) {
      this.events.push(e);
      this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
    }
    if (this.timer) clearTimeout(this.timer);
    const next = this.agent.nextDeadline();
    if (next !== null)
      this.timer = setTimeout(() => this.apply(this.agent.poll(Date.now())), Math.max(0, next - Date.now()));
  }

  /** Resolve with the first event (already seen or future) matching pred; reject after ms. */
  waitFor(pred: (e: AgentEvent) => boolean, ms = 3000): Promise<AgentEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(
          new Error(
            `no matching agent event within ${ms} ms; saw ${JSON.stringify(this.events.map((e) => e.kind))}`,
          ),
        );
      }, ms);
    });
  }

  /** Resolve once n events (already seen or future) match pred; reject after ms. */
  async waitForCount(pred: (e: AgentEvent) => boolean, n: number, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (this.events.filter(pred).length < n) {
      if (Date.now() > end)
        throw new Error(
          `fewer than ${n} matching agent events within ${ms} ms; saw ${this.events.filter(pred).length}`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Send raw bytes to the gateway from this agent's socket. */
  sendRaw(b: Buffer): void {
    this.sock.send(b, this.gw.port, this.gw.addr);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.sock.close();
  }
}
