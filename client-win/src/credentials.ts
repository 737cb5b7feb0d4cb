// What `gsra-agent login` keeps on disk: the user's DN, per-user secret and group keys (never
// the password). Linux: a JSON file, mode 0600, in a directory of mode 0700, written atomically
// (protected-file-linux.ts). Windows: the same JSON encrypted with DPAPI in an admin-only folder
// (protected-file-windows.ts).
import { join } from 'node:path';
import * as linux from './protected-file-linux.ts';
import * as windows from './protected-file-windows.ts';

const store = process.platform === 'win32' ? windows : linux;

export interface StoredKey {
  version: number;
  key: Buffer;
  notAfter?: number;
}

export interface StoredGroup {
  name: string;
  keys: StoredKey[];
  hosts: { name: string; address: string }[];
}

export interface Credentials {
  /** The directory's own id (uid / sAMAccountName): what the agent sends to the gateway. */
  user: string;
  /** What the user typed at login, when it differs (e.g. erin.wong@corp.example, CORP\ewong). */
  typed?: string;
  dn: string;
  secret: Buffer;
  groups: StoredGroup[];
  fetchedAt: number;
}

export function credentialsPath(stateDir: string): string {
  return join(stateDir, store.FILE_NAME);
}

export function saveCredentials(stateDir: string, c: Credentials): void {
  const data = JSON.stringify({
    ...c,
    secret: c.secret.toString('base64'),
    groups: c.groups.map((g) => ({
      ...g,
      keys: g.keys.map((k) => ({ ...k, key: k.key.toString('base64') })),
    })),
  });
  store.writeProtected(stateDir, Buffer.from(data));
}

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** When a login stored at `fetchedAt` stops being usable. */
export function credentialsExpireAt(c: Pick<Credentials, 'fetchedAt'>, maxAgeHours: number): number {
  return c.fetchedAt + maxAgeHours * 3_600_000;
}

/** Why a stored login may no longer be used (too old), or undefined. Words for the user. */
export function credentialsTooOld(
  c: Pick<Credentials, 'fetchedAt' | 'user'>,
  maxAgeHours: number,
  now = Date.now(),
): string | undefined {
  if (now < credentialsExpireAt(c, maxAgeHours)) return undefined;
  const when = new Date(c.fetchedAt).toISOString().replace('T', ' ').slice(0, 16);
  return `the GSRA login of ${c.user} from ${when} UTC has expired (logins last ${maxAgeHours} h): run gsra-agent login again`;
}

/** Load the stored login; refuses a file others can read (Linux) or one DPAPI cannot open (Windows). */
export function loadCredentials(stateDir: string): Credentials {
  const file = credentialsPath(stateDir);
  let bytes;
  try {
    bytes = store.readProtected(stateDir);
  } catch (e) {
    throw new CredentialsError((e as Error).message);
  }
  if (!bytes) throw new CredentialsError(`not logged in: no ${file} (run gsra-agent login)`);
  const raw = JSON.parse(bytes.toString('utf8')) as Omit<Credentials, 'secret' | 'groups'> & {
    secret: string;
    groups: (Omit<StoredGroup, 'keys'> & { keys: (Omit<StoredKey, 'key'> & { key: string })[] })[];
  };
  return {
    ...raw,
    secret: Buffer.from(raw.secret, 'base64'),
    groups: raw.groups.map((g) => ({
      ...g,
      keys: g.keys.map((k) => ({ ...k, key: Buffer.from(k.key, 'base64') })),
    })),
  };
}
