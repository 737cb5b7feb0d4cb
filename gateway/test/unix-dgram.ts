// A Unix datagram socket bound for a test, standing for /dev/log: every datagram it receives, as
// text. Bound by a few lines of Python (Node cannot bind one); `up` resolves once it is bound.
import { spawn } from 'node:child_process';

export interface UnixDatagramReceiver {
  got: string[];
  up: Promise<void>;
  stop(): void;
}

export function unixDatagramReceiver(path: string): UnixDatagramReceiver {
  const got: string[] = [];
  const py = [
    'import socket, sys, base64',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("ready", flush=True)',
    'while True:',
    '    print(base64.b64encode(s.recv(65536)).decode(), flush=True)',
  ].join('\n');
  const p = spawn('python3', ['-c', py, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  let ready!: () => void;
  const up = new Promise<void>((r) => (ready = r));
  p.stdout.on('data', (d: Buffer) => {
    const lines = (buf + d.toString()).split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'ready') ready();
      else got.push(Buffer.from(l, 'base64').toString());
    }
  });
  return { got, up, stop: () => p.kill() };
}
