// New HTTP connections at a pace, or all at once, from one teleworker PC: each request on a new
// TCP connection (no keep-alive), as a browser opening an intranet page makes many. The name is
// resolved once, as a browser's DNS cache does (the agent sees one DNS query, not one per request).
// Usage: node http-load.mjs <url> rate <per-second> <seconds>
//        node http-load.mjs <url> burst <count>
// Prints one JSON line: { ok, failed, errors: { code: n }, ms: { p50, p99, max }, seconds }.
import { request } from 'node:http';
import { lookup } from 'node:dns/promises';

const [url, mode, a, b] = process.argv.slice(2);
const results = [];
const { address, family } = await lookup(new URL(url).hostname, { family: 4 });
const cached = (_host, opts, cb) => (opts?.all ? cb(null, [{ address, family }]) : cb(null, address, family));

function one() {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 20_000, lookup: cached }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ ok: res.statusCode === 200, code: String(res.statusCode), ms: performance.now() - t0 }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ ok: false, code: e.code ?? e.message, ms: performance.now() - t0 }));
    req.end();
  });
}

const start = performance.now();
const pending = [];
if (mode === 'burst') {
  for (let i = 0; i < Number(a); i++) pending.push(one().then((r) => results.push(r)));
} else {
  const perSec = Number(a);
  const total = perSec * Number(b);
  for (let i = 0; i < total; i++) {
    // start each connection at its own moment (i / perSec s after the start), not in batches
    const due = start + (i * 1000) / perSec;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(one().then((r) => results.push(r)));
  }
}
await Promise.all(pending);
const ms = results.map((r) => r.ms).sort((x, y) => x - y);
const q = (p) => Math.round(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? 0);
const errors = {};
for (const r of results) if (!r.ok) errors[r.code] = (errors[r.code] ?? 0) + 1;
console.log(
  JSON.stringify({
    ok: results.filter((r) => r.ok).length,
    failed: results.filter((r) => !r.ok).length,
    errors,
    ms: { p50: q(0.5), p99: q(0.99), max: Math.round(ms.at(-1) ?? 0) },
    seconds: Math.round((performance.now() - start) / 100) / 10,
  }),
);
