// Windows: the agent's cached login encrypted with DPAPI (machine scope: the blob is useless on
// another PC) in %ProgramData%\GSRA\state, a folder only SYSTEM and Administrators can read (the
// service host and the MSI set that ACL). Written atomically. The Linux twin is
// protected-file-linux.ts.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dpapiProtect, dpapiUnprotect } from '@gsra/native';

export const FILE_NAME = 'credentials.dpapi';

export function writeProtected(dir: string, data: Buffer, name = FILE_NAME): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}`);
  writeFileSync(tmp, dpapiProtect(data, 'machine'));
  renameSync(tmp, file);
  return file;
}

/** The decrypted bytes; null if there is no file; throws DPAPI's sentence if it cannot decrypt. */
export function readProtected(dir: string, name = FILE_NAME): Buffer | null {
  let blob;
  try {
    blob = readFileSync(join(dir, name));
  } catch {
    return null;
  }
  return dpapiUnprotect(blob);
}
