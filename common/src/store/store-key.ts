// The key that protects a state store at rest: 32 random bytes in a file only the daemon can read
// (mode 0600, created with O_EXCL the first time), or derived from a secret the operator
// configures. A journal file never holds this key: each file is encrypted under a key derived
// from it and the file's own random id (journal-store.ts), so copying the state directory without
// the key file (a backup, a disk image, a replicated store's server) gives no session secret.
import { closeSync, constants, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { hkdfSync, randomBytes } from 'node:crypto';

export const STORE_KEY_LEN = 32;

/** Refuses a file others could read (POSIX; Windows files are protected by their folder's ACL). */
export function checkPrivate(file: string, what: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new Error(
      `${what} ${file} is readable by others (mode ${mode.toString(8)}); run chmod 600 ${file}`,
    );
}

/**
 * The store key in `file`: read it (refused if others can read it or it is not 32 bytes), or
 * create it with 32 random bytes, mode 0600, if it does not exist.
 */
export function loadOrCreateKeyFile(file: string): { key: Buffer; created: boolean } {
  try {
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    const key = randomBytes(STORE_KEY_LEN);
    try {
      writeSync(fd, key);
    } finally {
      closeSync(fd);
    }
    return { key, created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  checkPrivate(file, 'state key file');
  const key = readFileSync(file);
  if (key.length !== STORE_KEY_LEN)
    throw new Error(`state key file ${file} holds ${key.length} bytes, expected ${STORE_KEY_LEN}`);
  return { key, created: false };
}

/** The key of one journal file: HKDF-SHA256(store key, salt = the file's id, info = its purpose). */
export function fileKey(storeKey: Buffer, fileId: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', storeKey, fileId, Buffer.from(`gsra state v1 ${purpose}`), 32));
}
