// The reset key: created once (32 random bytes, mode 0600, atomically), the same after a restart.
import t from 'tap';
import { mkdtempSync, statSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSecretStore, loadResetKey, RESET_KEY_FILE } from '../src/reset-key.ts';

t.test('created on first start, mode 0600 in a 0700 directory, and the same after a restart', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'gsra-reset-')), 'state');
  const k1 = loadResetKey(new FileSecretStore(dir));
  t.equal(k1.length, 32);
  t.equal(statSync(join(dir, RESET_KEY_FILE)).mode & 0o777, 0o600);
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.same(readdirSync(dir), [RESET_KEY_FILE], 'no temporary file left');
  const k2 = loadResetKey(new FileSecretStore(dir));
  t.same(k2, k1, 'a restarted gateway reads the same key');
  const other = loadResetKey(new FileSecretStore(join(dir, 'elsewhere')));
  t.notSame(other, k1, 'another gateway, another key');
});

t.test('a key readable by others or of the wrong size is refused, not used', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsra-reset-'));
  const file = join(dir, RESET_KEY_FILE);
  writeFileSync(file, Buffer.alloc(32, 1), { mode: 0o644 });
  chmodSync(file, 0o644);
  t.throws(() => loadResetKey(new FileSecretStore(dir)), /readable by others/);
  writeFileSync(file, Buffer.alloc(16, 1), { mode: 0o600 });
  chmodSync(file, 0o600);
  t.throws(() => loadResetKey(new FileSecretStore(dir)), /expected 32 bytes, got 16/);
});
