// The operator's local HTTP endpoint: /metrics (Prometheus), /healthz (200 or 503 with reasons),
// /status (JSON: sessions, flows, reservations, counters) and the read-only status page at /
// (status-page.ts). Bound to a local address only.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { BROWSER_HEADERS, hostAllowed, type StaticFile } from './status-page.ts';

export interface OpsSource {
  registry: Registry;
  /** Problems that make the gateway unhealthy; empty when healthy. */
  health(): string[];
  status(): unknown;
  /** The status page's files by URL path (none: no page). */
  page?: Map<string, StaticFile>;
}

export class OpsServer {
  private server: Server | undefined;
  constructor(private src: OpsSource) {}

  async listen(address: string, port: number): Promise<{ address: string; port: number }> {
    const server = createServer((req, res) => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        if (req.method !== 'GET') {
          res.writeHead(405).end();
        } else if (path === '/metrics') {
          res.setHeader('content-type', this.src.registry.contentType);
          res.end(await this.src.registry.metrics());
        } else if (path === '/healthz') {
          const problems = this.src.health();
          res.writeHead(problems.length ? 503 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: problems.length === 0, problems }) + '\n');
        } else if ((path === '/status' || this.src.page?.has(path)) && !hostAllowed(req.headers.host)) {
          // Browser-facing answers only to a Host that is an address: no DNS rebinding.
          res.writeHead(421, { 'content-type': 'text/plain' }).end("use the gateway's address, not a name\n");
        } else if (path === '/status') {
          res.writeHead(200, { ...BROWSER_HEADERS, 'content-type': 'application/json' });
          res.end(JSON.stringify(this.src.status(), null, 2) + '\n');
        } else if (this.src.page?.has(path)) {
          const f = this.src.page.get(path)!;
          res.writeHead(200, { ...BROWSER_HEADERS, 'content-type': f.type }).end(f.body);
        } else {
          res.writeHead(404).end();
        }
      })().catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => resolve());
    });
    const a = server.address();
    return typeof a === 'object' && a ? { address: a.address, port: a.port } : { address, port };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
