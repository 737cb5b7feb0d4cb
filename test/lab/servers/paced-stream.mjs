// A TCP server that sends one file at a steady pace, for the roaming tests and the lab's story:
// with --push it speaks first (sends as soon as a client connects, like a banner or a server
// push); with --push-after=<ms> it speaks first after that long a silence; without, it waits for
// the client's request line first (like HTTP).
// Usage: node paced-stream.mjs <listen-address> <port> <file> <chunk-bytes> <interval-ms> [--push | --push-after=<ms>]
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';

const [host, port, file, chunkArg, intervalArg, mode] = process.argv.slice(2);
const data = readFileSync(file);
const chunk = Number(chunkArg);
const interval = Number(intervalArg);

const server = createServer((sock) => {
  sock.on('error', () => sock.destroy());
  let off = 0;
  const next = () => {
    if (sock.destroyed) return;
    if (off >= data.length) return void sock.end();
    const piece = data.subarray(off, off + chunk);
    off += piece.length;
    // Pace, and respect the receiver's window (wait for 'drain' when the socket buffer is full).
    if (sock.write(piece)) setTimeout(next, interval);
    else sock.once('drain', () => setTimeout(next, interval));
  };
  if (mode === '--push') next();
  else if (mode?.startsWith('--push-after=')) setTimeout(next, Number(mode.split('=')[1]));
  else sock.once('data', next);
});
server.listen(Number(port), host, () => console.log(`listening on ${host}:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
