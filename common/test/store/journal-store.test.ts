// The embedded state store: what is committed is read back after a restart (also after kill -9),
// a batch survives whole or not at all, the file is private and carries no secret in clear, a
// journal the key cannot open is set aside, and compaction keeps the file small.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournalStore } from '../../src/store/journal-store.ts';
import { loadOrCreateKeyFile } from '../../src/store/store-key.ts';

const KEY = Buffer.alloc(32, 7);
const fresh = () => join(mkdtempSync(join(tmpdir(), 'gsra-store-')), 'state');
const open = async (dir: string, o: { key?: Buffer; compactMinBytes?: number; purpose?: string } = {}) => {
  const s = new JournalStore({
    dir,
    key: o.key ?? KEY,
    purpose: o.purpose ?? 'test',
    compactMinBytes: o.compactMinBytes,
  });
  return { s, loaded: await s.load() };
};

t.test('what was committed is read back by the next run: puts, overwrites, deletions', async (t) => {
  const dir = fresh();
  const { s } = await open(dir);
  s.commit({
    put: [
      ['a', { n: 1 }],
      ['b', 'two'],
    ],
    del: [],
  });
  s.commit({ put: [['a', { n: 3 }]], del: ['b'] });
  s.commit({ put: [['c', [1, 2]]], del: [] });
  s.close();
  const { loaded } = await open(dir);
  t.same(
    [...loaded],
    [
      ['a', { n: 3 }],
      ['c', [1, 2]],
    ],
  );
});

t.test('the folder is 0700, the journal 0600; a journal others can read is refused', async (t) => {
  const dir = fresh();
  const { s } = await open(dir);
  s.commit({ put: [['k', 1]], del: [] });
  s.close();
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.equal(statSync(join(dir, 'state.journal')).mode & 0o777, 0o600);
  chmodSync(join(dir, 'state.journal'), 0o644);
  await t.rejects(open(dir), /state journal .* is readable by others \(mode 644\); run chmod 600/);
});

t.test('no value is readable in the file', async (t) => {
  const dir = fresh();
  const secret = 'f00dfeedcafe1234f00dfeedcafe1234';
  const { s } = await open(dir);
  s.commit({ put: [['session/1', { secret, user: 'alice' }]], del: [] });
  s.close();
  const raw = readFileSync(join(dir, 'state.journal'));
  t.equal(raw.indexOf(secret), -1, 'the secret is not in the file');
  t.equal(raw.indexOf('alice'), -1, 'nor the user');
  t.equal(raw.subarray(0, 8).toString(), 'GSRAST01');
});

t.test('a batch torn by a crash is dropped whole; the batches before it survive', async (t) => {
  const dir = fresh();
  const { s } = await open(dir);
  s.commit({ put: [['a', 1]], del: [] });
  s.commit({
    put: [
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ],
    del: ['a'],
  });
  s.close();
  const file = join(dir, 'state.journal');
  truncateSync(file, statSync(file).size - 5); // the last write only partly reached the disk
  const again = await open(dir);
  t.same([...again.loaded], [['a', 1]], 'none of the torn batch, all of the one before');
  t.match(again.s.info().loadProblem, /record 1 does not verify \(torn by a crash\?\)/);
  // later commits go to a fresh file and are read back after the torn record
  again.s.commit({ put: [['e', 5]], del: [] });
  again.s.close();
  t.same(
    [...(await open(dir)).loaded],
    [
      ['a', 1],
      ['e', 5],
    ],
  );
});

t.test('records cannot be reordered: a record moved to another place does not verify', async (t) => {
  const dir = fresh();
  const { s } = await open(dir);
  const file = join(dir, 'state.journal');
  const start = statSync(file).size;
  s.commit({ put: [['x', 'first']], del: [] });
  const mid = statSync(file).size;
  s.commit({ put: [['x', 'second']], del: [] });
  s.close();
  const raw = readFileSync(file);
  const swapped = Buffer.concat([raw.subarray(0, start), raw.subarray(mid), raw.subarray(start, mid)]);
  writeFileSync(file, swapped, { mode: 0o600 });
  const again = await open(dir);
  t.same([...again.loaded], [], 'the first record in place is not the first written');
});

t.test('a journal the key does not open is set aside, and the store starts empty', async (t) => {
  const dir = fresh();
  const { s } = await open(dir);
  s.commit({ put: [['a', 1]], del: [] });
  s.close();
  const other = await open(dir, { key: Buffer.alloc(32, 8) });
  t.same([...other.loaded], []);
  t.match(other.s.info().loadProblem, /the state key does not open this journal/);
  t.ok(
    readdirSync(dir).some((f) => f.startsWith('state.journal.unreadable-')),
    'the old file is kept for an operator',
  );
  other.s.close();
});

t.test('one daemon never reads another one’s journal (the purpose is part of the key)', async (t) => {
  const dir = fresh();
  const { s } = await open(dir, { purpose: 'agent' });
  s.commit({ put: [['a', 1]], del: [] });
  s.close();
  t.same([...(await open(dir, { purpose: 'gateway' })).loaded], []);
});

t.test('compaction keeps the file near the size of the live records', async (t) => {
  const dir = fresh();
  const { s } = await open(dir, { compactMinBytes: 64 * 1024 });
  const big = 'x'.repeat(200);
  for (let i = 0; i < 5000; i++) s.commit({ put: [[`k${i % 10}`, { i, big }]], del: [] });
  const size = statSync(join(dir, 'state.journal')).size;
  t.ok(size < 2 * 64 * 1024 + 4096, `${size} bytes after 5000 commits of 10 live records`);
  t.ok(s.info().compactedAt > 0);
  s.close();
  const { loaded } = await open(dir);
  t.same(loaded.get('k9'), { i: 4999, big });
  t.equal(loaded.size, 10);
});

t.test('kill -9 right after a commit loses nothing', async (t) => {
  const dir = fresh();
  const child = `
    import { JournalStore } from ${JSON.stringify(join(import.meta.dirname, '../../src/store/journal-store.ts'))};
    const s = new JournalStore({ dir: ${JSON.stringify(dir)}, key: Buffer.alloc(32, 7), purpose: 'test', syncMs: 60000 });
    await s.load();
    for (let i = 0; i < 100; i++) s.commit({ put: [['n', i]], del: [] });
    process.kill(process.pid, 'SIGKILL');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
    encoding: 'utf8',
  });
  t.equal(r.signal, 'SIGKILL', `the writer was killed (${r.stderr.slice(0, 200)})`);
  t.same((await open(dir)).loaded.get('n'), 99, 'the last commit before the kill is there');
});

t.test(
  'the key file: created once with 32 random bytes, 0600; refused when others can read it',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gsra-key-'));
    const file = join(dir, 'state.key');
    const a = loadOrCreateKeyFile(file);
    t.ok(a.created);
    t.equal(a.key.length, 32);
    t.equal(statSync(file).mode & 0o777, 0o600);
    const b = loadOrCreateKeyFile(file);
    t.notOk(b.created);
    t.same(b.key, a.key, 'the same key the next time');
    chmodSync(file, 0o640);
    t.throws(() => loadOrCreateKeyFile(file), /state key file .* is readable by others/);
    const short = join(dir, 'short.key');
    writeFileSync(short, Buffer.alloc(16), { mode: 0o600 });
    t.throws(() => loadOrCreateKeyFile(short), /holds 16 bytes, expected 32/);
  },
);
