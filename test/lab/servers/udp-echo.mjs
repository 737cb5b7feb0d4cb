// UDP reflector for the lab: answers every datagram with "<payload> from <address>:<port>",
// the sender as this host sees it (after any NAT on the way).
// Usage: node udp-echo.mjs <listen-address> <port>
import { createSocket } from 'node:dgram';

const [host, port] = process.argv.slice(2);
const sock = createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  sock.send(`${msg.toString()} from ${rinfo.address}:${rinfo.port}`, rinfo.port, rinfo.address);
});
sock.bind(Number(port), host, () => console.log(`listening on ${host}:${port}`));
process.on('SIGTERM', () => sock.close(() => process.exit(0)));
