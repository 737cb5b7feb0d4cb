// The client side of udp-late.mjs: sends one datagram (by name: through GSRA) and waits for
// "ack" and then "late"; prints one JSON line with what arrived and when (ms after sending).
// Usage: node udp-late-client.mjs <host> <port> <timeout-ms>
import { createSocket } from 'node:dgram';

const [host, port, timeoutArg] = process.argv.slice(2);
const sock = createSocket('udp4');
const got = {};
const t0 = performance.now();
const timer = setTimeout(done, Number(timeoutArg));
sock.on('message', (msg) => {
  got[msg.toString()] = Math.round(performance.now() - t0);
  if (got.late !== undefined) done();
});
sock.send('hello', Number(port), host);
function done() {
  clearTimeout(timer);
  console.log(JSON.stringify({ ackMs: got.ack ?? null, lateMs: got.late ?? null }));
  sock.close();
}
