// Sends one datagram from a fixed source port to each destination and prints the replies as
// one JSON array: [{ to, reply }]. A destination that does not answer within 2 s gets reply null.
// Usage: node udp-probe.mjs <source-port> <addr:port> [<addr:port> ...]
import { createSocket } from 'node:dgram';

const [sport, ...dests] = process.argv.slice(2);
const sock = createSocket('udp4');
const replies = new Map();
sock.on('message', (msg, rinfo) => replies.set(`${rinfo.address}:${rinfo.port}`, msg.toString()));
sock.bind(Number(sport), () => {
  for (const d of dests) {
    const [a, p] = d.split(':');
    sock.send(`probe`, Number(p), a);
  }
  const done = () => {
    console.log(JSON.stringify(dests.map((to) => ({ to, reply: replies.get(to) ?? null }))));
    sock.close();
  };
  const start = Date.now();
  const tick = setInterval(() => {
    if (replies.size === dests.length || Date.now() - start > 2000) {
      clearInterval(tick);
      done();
    }
  }, 20);
});
