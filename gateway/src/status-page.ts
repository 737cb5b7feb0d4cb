// The read-only status page's files (gateway/status-page/), as the ops server serves them: the
// page at /, its stylesheet and script under /status-page/. They are read once, at start. Every
// answer forbids framing, sniffing, caching and any script or connection but the gateway's own
// (Content-Security-Policy), so the page can show nothing but what ./status says.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'status-page');

/** Headers for every browser-facing answer (the page, its files, and /status). */
export const BROWSER_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface StaticFile {
  type: string;
  body: Buffer;
}

/** URL path → file, for the page and its two assets. */
export function statusPageFiles(dir = DIR): Map<string, StaticFile> {
  const f = (name: string, type: string): StaticFile => ({ type, body: readFileSync(join(dir, name)) });
  return new Map([
    ['/', f('index.html', 'text/html; charset=utf-8')],
    ['/status-page/status.css', f('status.css', 'text/css; charset=utf-8')],
    ['/status-page/status.js', f('status.js', 'text/javascript; charset=utf-8')],
  ]);
}

/**
 * Whether a browser-facing request names the gateway by an address (or localhost) in its Host
 * header. A web page the operator visits elsewhere could otherwise read the status through DNS
 * rebinding (its own name, resolved to 127.0.0.1); a reverse proxy forwards with the upstream's
 * address as Host (nginx's default).
 */
export function hostAllowed(host: string | undefined): boolean {
  if (!host) return false;
  const v6 = /^\[([0-9a-f:.]*:[0-9a-f:.]*)\](:\d+)?$/i.exec(host);
  if (v6) return true;
  const name = host.replace(/:\d+$/, '');
  return name === 'localhost' || /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}
