// Linux: the agent's cached login is a file only its owner can read (0600, in a 0700 folder),
// written atomically. The Windows twin (protected-file-windows.ts) encrypts it with DPAPI.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const FILE_NAME = 'credentials.json';

export function writeProtected(dir: string, data: Buffer, name = FILE_NAME): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}`);
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** The file's bytes; null if there is none; throws if others could read it. */
export function readProtected(dir: string, name = FILE_NAME): Buffer | null {
  const file = join(dir, name);
  let st;
  try {
    st = statSync(file);
  } catch {
    return null;
  }
  if ((st.mode & 0o077) !== 0) {
    throw new Error(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); log in again`);
  }
  return readFileSync(file);
}
