// `gsra-agent login` asks for the password without echo: the prompt's editing rules on a fake
// terminal, and the real thing in a pseudo-terminal (util-linux `script`), where an echoing
// terminal would print the password back.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promptPassword, PromptCancelled } from '../src/password-prompt.ts';

class FakeTty extends EventEmitter {
  isTTY = true;
  raw: boolean[] = [];
  paused = true;
  setRawMode(m: boolean) {
    this.raw.push(m);
  }
  resume() {
    this.paused = false;
  }
  pause() {
    this.paused = true;
  }
  setEncoding() {}
}

function run(chunks: string[]) {
  const input = new FakeTty();
  let written = '';
  const p = promptPassword('password for alice: ', input, { write: (s: string) => (written += s) });
  for (const c of chunks) input.emit('data', c);
  return { p, input, written: () => written };
}

t.test('typed characters are not written back; raw mode on, then off', async (t) => {
  const r = run(['s3', 'cr', 'et\r']);
  t.equal(await r.p, 's3cret');
  t.equal(r.written(), 'password for alice: \n', 'only the question and a newline');
  t.same(r.input.raw, [true, false]);
  t.ok(r.input.paused, 'stdin let go');
});

t.test('backspace edits, arrows and other control keys are ignored', async (t) => {
  const r = run(['pass\u007fs', '\u001b[D\u001b[A', 'wörd\b\bd', '\u0001\n']);
  t.equal(await r.p, 'passwöd');
});

t.test('Ctrl+C cancels and restores the terminal', async (t) => {
  const r = run(['abc\u0003']);
  await t.rejects(r.p, PromptCancelled);
  t.same(r.input.raw, [true, false]);
});

t.test('Ctrl+D on an empty line ends it; from a pipe the line is read as it comes', async (t) => {
  t.equal(await run(['\u0004']).p, '');
  const pipe = new FakeTty();
  pipe.isTTY = false;
  const p = promptPassword('pw: ', pipe, { write: () => {} });
  pipe.emit('data', 'from-a-pipe\nrest');
  t.equal(await p, 'from-a-pipe');
  t.same(pipe.raw, [], 'no raw mode on a pipe');
});

t.test('in a real terminal the password is not echoed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-prompt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'agent.json');
  // A directory that refuses at once (nothing listens on port 1): login fails after the prompt.
  writeFileSync(
    cfg,
    JSON.stringify({
      gateway: { address: '203.0.113.1' },
      zones: ['corp.example'],
      ldap: { url: 'ldaps://127.0.0.1:1', caFile: cfg, baseDn: 'dc=corp,dc=example', connectTimeoutMs: 500 },
      stateDir: dir,
    }),
  );
  const bin = join(import.meta.dirname, '..', 'bin', 'gsra-agent.mjs');
  const secret = 'Tr0ub4dor-no-echo';
  // `script` gives the agent a pseudo-terminal; its input arrives after the prompt is up.
  const r = spawnSync(
    'bash',
    [
      '-c',
      `(sleep 3; printf '%s\\r' "$1"; sleep 3) | script -qfec "${process.execPath} ${bin} login --user alice -c ${cfg}" /dev/null`,
      'x',
      secret,
    ],
    {
      encoding: 'utf8',
      timeout: 60_000,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'GSRA_PASSWORD')),
    },
  );
  const out = `${r.stdout}${r.stderr}`;
  t.match(out, /password for alice: /, 'asked');
  t.notMatch(out, new RegExp(secret), 'the password never appears on the terminal');
  t.match(out, /gsra-agent login: /, 'and then used (the directory refused)');
});
