// The client side of paced-stream.mjs: connects (by name: through GSRA, to a VIN), sends a
// request line unless the server speaks first, reads to the end and prints one JSON line:
// bytes, sha256, the longest gap between two arrivals (the stall) and when it began (ms after
// the first byte), and the wall-clock times; says 'connected', then 'receiving' after 256 KiB, on stderr; of the first and the last byte. Usage: node stream-client.mjs <host> <port> <request|listen> <timeout-ms>
import { connect } from 'node:net';
import { createHash } from 'node:crypto';

const [host, port, mode, timeoutArg] = process.argv.slice(2);
const hash = createHash('sha256');
let bytes = 0;
let first = 0;
let last = 0;
let firstAt = 0;
let maxGapMs = 0;
let gapAtMs = 0;
const sock = connect({ host, port: Number(port) }, () => {
  console.error('connected');
  if (mode === 'request') sock.write('GET\n');
});
const timer = setTimeout(() => finish('timeout'), Number(timeoutArg));
sock.on('data', (d) => {
  const now = performance.now();
  if (bytes === 0) {
    first = now;
    firstAt = Date.now();
  } else if (now - last > maxGapMs) {
    maxGapMs = now - last;
    gapAtMs = last - first;
  }
  last = now;
  if (bytes < 256 * 1024 && bytes + d.length >= 256 * 1024) console.error('receiving');
  bytes += d.length;
  hash.update(d);
});
sock.on('end', () => finish('end'));
sock.on('error', (e) => finish(e.code ?? e.message));
let done = false;
function finish(how) {
  if (done) return;
  done = true;
  clearTimeout(timer);
  const out = {
    how,
    bytes,
    sha256: hash.digest('hex'),
    maxGapMs: Math.round(maxGapMs),
    gapAtMs: Math.round(gapAtMs),
    firstAt,
    lastAt: Math.round(firstAt + (last - first)),
  };
  console.log(JSON.stringify(out));
  sock.destroy();
}
