// The login prompt never echoes the password: raw mode on a terminal (checked on a real
// pseudo-terminal too), one line from a pipe.
import t from 'tap';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPassword, PromptCancelled } from '../src/prompt.ts';

function fakeTty() {
  const input = Object.assign(new PassThrough(), { isTTY: true, raw: [] as boolean[] });
  (input as unknown as { setRawMode: (r: boolean) => void }).setRawMode = (r: boolean) => input.raw.push(r);
  const output = new PassThrough();
  let shown = '';
  output.on('data', (b: Buffer) => (shown += b.toString()));
  return { input, output, shown: () => shown };
}

t.test('terminal: raw mode, no echo, Backspace and Ctrl-U edit, raw mode restored', async (t) => {
  const io = fakeTty();
  const p = readPassword('password for alice: ', io);
  io.input.write('xx\u0015');
  io.input.write('secr\u007ft');
  io.input.write('é!\r');
  t.equal(await p, 'secté!');
  t.equal(io.shown(), 'password for alice: \n', 'the prompt and a newline, nothing typed');
  t.same(io.input.raw, [true, false]);
});

t.test('terminal: arrow, function and editing keys are ignored, never typed into the password', async (t) => {
  const io = fakeTty();
  const p = readPassword('pw: ', io);
  io.input.write('se\u001b[A'); // up arrow
  io.input.write('c\u001b[1;5D'); // Ctrl-Left (parameters)
  io.input.write('r\u001b'); // a sequence split across reads: ESC …
  io.input.write('[3~e'); // … [3~ (Delete), then a typed e
  io.input.write('\u001bOPt\u001b[200~!\u001b[201~\r'); // F1 (SS3), bracketed paste of "!"
  t.equal(await p, 'secret!');
  t.equal(io.shown(), 'pw: \n');
});

t.test('terminal: Ctrl-C cancels and restores the terminal', async (t) => {
  const io = fakeTty();
  const p = readPassword('pw: ', io);
  io.input.write('abc\u0003');
  await t.rejects(p, PromptCancelled);
  t.same(io.input.raw, [true, false]);
  t.notMatch(io.shown(), /abc/);
});

t.test('not a terminal: reads one line (CRLF too), echoes nothing', async (t) => {
  for (const [data, want] of [
    ['pw-from-a-pipe\nnext line\n', 'pw-from-a-pipe'],
    ['windows-pw\r\n', 'windows-pw'],
    ['no-newline-at-eof', 'no-newline-at-eof'],
  ] as const) {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (b: Buffer) => (shown += b.toString()));
    const p = readPassword('pw: ', { input, output });
    input.end(data);
    t.equal(await p, want);
    t.equal(shown, 'pw: \n');
  }
  const input = new PassThrough();
  const p = readPassword('pw: ', { input, output: new PassThrough() });
  input.end();
  await t.rejects(p, PromptCancelled, 'nothing at all: cancelled');
});

t.test('on a real pseudo-terminal the typed password never appears', async (t) => {
  const here = dirname(fileURLToPath(import.meta.url));
  const prog = join(here, 'fixtures', 'prompt-once.ts');
  const tsx = join(here, '..', '..', 'node_modules', '.bin', 'tsx');
  // script(1) gives the child a pty: with echo on (the old readline prompt) the kernel would
  // copy "hunter2-typed" back into the transcript.
  const child = spawn('script', ['-qfec', `${tsx} ${prog}`, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const tick = setInterval(() => {
      if (out.includes('password: ')) {
        clearInterval(tick);
        child.stdin.write('hunter2-typed\r');
        resolve();
      } else if (Date.now() - started > 20_000) {
        clearInterval(tick);
        reject(new Error(`no prompt: ${out}`));
      }
    }, 20);
  });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  t.equal(code, 0, out);
  t.match(out, /read 13 characters/, 'the program got the password');
  t.notMatch(out, /hunter2/, 'the terminal never showed it');
});
