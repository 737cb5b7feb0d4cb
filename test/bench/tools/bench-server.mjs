// The benchmark's servers on the internal host, on every address it has:
//   echo port:   every byte received is written back (request/response loops, concurrent connections);
//   banner port: writes one byte ("G") as soon as a connection is accepted (connect-to-first-byte).
// Usage: node bench-server.mjs <echo-port> <banner-port>; prints "listening" once both listen.
import { createServer } from 'node:net';

const [echoPort, bannerPort] = process.argv.slice(2).map(Number);
const quiet = (s) => s.on('error', () => {});
const echo = createServer({ noDelay: true }, (s) => {
  quiet(s);
  s.on('data', (d) => s.write(d));
});
const banner = createServer({ noDelay: true }, (s) => {
  quiet(s);
  s.write('G');
  s.on('data', () => {});
});
for (const srv of [echo, banner]) srv.maxConnections = 10_000;
let up = 0;
const ready = () => {
  if (++up === 2) console.log('listening');
};
echo.listen({ port: echoPort, host: '0.0.0.0', backlog: 1024 }, ready);
banner.listen({ port: bannerPort, host: '0.0.0.0', backlog: 1024 }, ready);
