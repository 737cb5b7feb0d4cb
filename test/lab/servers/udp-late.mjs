// A UDP server that speaks next after a long silence: it answers each datagram with "ack" at
// once and with "late" <delay-ms> later, so the flow is idle in between (behind a NAT, the
// "late" datagram needs the mapping to still be there).
// Usage: node udp-late.mjs <listen-address> <port> <delay-ms>
import { createSocket } from 'node:dgram';

const [host, port, delay] = process.argv.slice(2);
const sock = createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  sock.send('ack', rinfo.port, rinfo.address);
  setTimeout(() => sock.send('late', rinfo.port, rinfo.address), Number(delay));
});
sock.bind(Number(port), host, () => console.log(`listening on ${host}:${port}`));
process.on('SIGTERM', () => sock.close(() => process.exit(0)));
