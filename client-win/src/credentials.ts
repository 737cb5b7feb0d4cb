// What `gsra-agent login` keeps on disk: the user's DN, per-user secret and group keys (never
// the password). Linux: a JSON file, mode 0600, in a directory of mode 0700, written atomically.
// Windows (later): the same content protected with DPAPI.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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

const FILE = 'credentials.json';

export function credentialsPath(stateDir: string): string {
  return join(stateDir, FILE);
}

export function saveCredentials(stateDir: string, c: Credentials): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const data = JSON.stringify({
    ...c,
    secret: c.secret.toString('base64'),
    groups: c.groups.map((g) => ({
      ...g,
      keys: g.keys.map((k) => ({ ...k, key: k.key.toString('base64') })),
    })),
  });
  const tmp = join(stateDir, `.${FILE}.${process.pid}`);
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, credentialsPath(stateDir));
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

/** Load the stored login; refuses a file others can read (it holds secrets). */
export function loadCredentials(stateDir: string): Credentials {
  const file = credentialsPath(stateDir);
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new CredentialsError(`not logged in: no ${file} (run gsra-agent login)`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new CredentialsError(
      `${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); log in again`,
    );
  }
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Omit<Credentials, 'secret' | 'groups'> & {
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
