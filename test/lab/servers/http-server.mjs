// A small static HTTP server for the lab's internal hosts. GET /whoami answers with the peer's
// address as the server sees it (JSON), which shows who the server believes it talks to.
// Usage: node http-server.mjs <listen-address> <port> <root-dir>
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { join, normalize } from 'node:path';

const [host, port, root] = process.argv.slice(2);
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/whoami') {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({ address: req.socket.remoteAddress, port: req.socket.remotePort, server: host }) + '\n',
    );
    return;
  }
  const rel = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
  const file = join(root, rel === '/' ? 'index.html' : rel);
  let st;
  try {
    st = statSync(file);
  } catch {
    res.statusCode = 404;
    res.end('not found\n');
    return;
  }
  if (!st.isFile()) {
    res.statusCode = 403;
    res.end('forbidden\n');
    return;
  }
  res.setHeader('content-length', st.size);
  createReadStream(file).pipe(res);
});
server.listen(Number(port), host, () => console.log(`listening on ${host}:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
