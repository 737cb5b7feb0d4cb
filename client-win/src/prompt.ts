// The password prompt of `gsra-agent login`: nothing typed is echoed. On a terminal (Linux or a
// Windows console) stdin goes to raw mode and each key is handled here (Enter ends, Backspace
// erases, Ctrl-C / Ctrl-D on an empty line cancel; the escape sequences of arrow, function and
// editing keys — ESC [ ... final, ESC O x, ESC x — are ignored, also when split across reads, and
// never become part of the password); raw mode is restored whatever happens.
// Without a terminal (a pipe, a file, a service) it reads one line. No dependency.
import type { Readable, Writable } from 'node:stream';

export interface PromptStreams {
  input: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: Writable;
}

export class PromptCancelled extends Error {
  constructor() {
    super('password prompt cancelled');
    this.name = 'PromptCancelled';
  }
}

/** Ask for a password on `output` and read it from `input` without echo. */
export function readPassword(
  question: string,
  io: PromptStreams = { input: process.stdin, output: process.stderr },
): Promise<string> {
  const { input, output } = io;
  output.write(question);
  const raw = Boolean(input.isTTY && input.setRawMode);
  return new Promise<string>((resolve, reject) => {
    let text = '';
    let pending = ''; // non-TTY: bytes of a line not yet complete
    // raw: inside an escape sequence (after ESC; after ESC [ until its final byte; after ESC O)
    let esc: 'none' | 'esc' | 'csi' | 'ss3' = 'none';
    const finish = (err: Error | null) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      if (raw) input.setRawMode!(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string) => {
      const s = chunk.toString();
      if (!raw) {
        pending += s;
        const nl = pending.indexOf('\n');
        if (nl >= 0) {
          text = pending.slice(0, nl).replace(/\r$/, '');
          finish(null);
        }
        return;
      }
      for (const ch of s) {
        if (esc !== 'none') {
          if (esc === 'esc') esc = ch === '[' ? 'csi' : ch === 'O' ? 'ss3' : 'none';
          else if (esc === 'ss3') esc = 'none';
          else if (ch >= '@' && ch <= '~') esc = 'none'; // CSI final byte
          continue;
        }
        switch (ch) {
          case '\u001b': // ESC: a key's escape sequence follows
            esc = 'esc';
            break;
          case '\r':
          case '\n':
            return finish(null);
          case '\u0003': // Ctrl-C
            return finish(new PromptCancelled());
          case '\u0004': // Ctrl-D
            if (text === '') return finish(new PromptCancelled());
            return finish(null);
          case '\u007f':
          case '\b':
            text = [...text].slice(0, -1).join('');
            break;
          case '\u0015': // Ctrl-U: erase the line
            text = '';
            break;
          default:
            if (ch >= ' ') text += ch;
        }
      }
    };
    const onEnd = () => {
      text = raw ? text : pending.replace(/\r?\n?$/, '');
      if (!raw && text === '' && pending === '') return finish(new PromptCancelled());
      finish(null);
    };
    const onError = (e: Error) => finish(e);
    if (raw) input.setRawMode!(true);
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.resume();
  });
}
