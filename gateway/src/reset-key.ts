// The gateway's reset key (docs/protocol.md §6.6): a 32-byte secret, created once and kept in the
// gateway's state directory, from which every session's reset token is derived. Because it
// survives a restart, a gateway that lost its sessions can still prove to each agent that its
// session is gone (and nobody else can). One small file, readable by the gateway only.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const RESET_KEY_FILE = 'reset-key';
const KEY_LEN = 32;

/** Where a secret the gateway keeps across restarts lives (the state store may take its place). */
export interface SecretStore {
  /** The secret called `name`, created (random, `length` bytes) the first time it is asked for. */
  secret(name: string, length: number): Buffer;
}

/** Secrets as files of their own in a directory (mode 0700), each written atomically, mode 0600. */
export class FileSecretStore implements SecretStore {
  constructor(private readonly dir: string) {}

  secret(name: string, length: number): Buffer {
    const file = join(this.dir, name);
    try {
      const key = readFileSync(file);
      if (key.length !== length) throw new Error(`${file}: expected ${length} bytes, got ${key.length}`);
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077)
        throw new Error(`${file}: readable by others (mode ${mode.toString(8)}); expected 0600`);
      return key;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const key = randomBytes(length);
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file); // all or nothing: a crash leaves no half-written key
    return key;
  }
}

/** The gateway's reset key from its state directory (created on first start). */
export const loadResetKey = (store: SecretStore): Buffer => store.secret(RESET_KEY_FILE, KEY_LEN);
