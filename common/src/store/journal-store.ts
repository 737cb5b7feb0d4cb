// The embedded state store: one append-only journal file in the daemon's state directory.
//
// File: "GSRAST01" (8 bytes) | file id (16 random bytes) | records. A record is be32(n) followed
// by n bytes: one batch as JSON, sealed with AES-256-GCM under the file's key (HKDF of the store
// key and the file id, store-key.ts); record i uses the nonce be32(0) || be64(i) and the header
// and i as associated data, so a record cannot be altered, moved or replayed into another file
// without the key. The tag is the checksum: a batch torn by a crash fails it and is dropped with
// everything after it (so a batch survives whole or not at all).
//
// Durability: commit() writes the batch with one write() before it returns (a killed process
// loses nothing); fdatasync() follows within `syncMs` (a power cut loses at most that much).
// Compaction rewrites the live records into a fresh file (new id, so nonces start over under a
// new key): temp file, fsync, rename, fsync of the folder. It runs at load (so nothing is ever
// appended after a torn record) and whenever the journal grew past twice its last compacted size.
// Files and folder are the daemon's only (0600, 0700); a journal others can read is refused.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { StateStore, StoreBatch, StoreInfo } from './state-store.ts';
import { checkPrivate, fileKey } from './store-key.ts';

const MAGIC = Buffer.from('GSRAST01', 'ascii');
const HEADER_LEN = MAGIC.length + 16;
const TAG_LEN = 16;
const MAX_RECORD = 64 << 20;
/** Records per batch when a compaction writes the live state. */
const SNAPSHOT_CHUNK = 512;

export interface JournalStoreOptions {
  /** The state directory (created 0700 if missing). */
  dir: string;
  /** File name in dir (default state.journal). */
  file?: string;
  /** The store key (store-key.ts): 32 bytes. */
  key: Buffer;
  /** What the file holds ("gateway", "agent"): part of its key, so one daemon never reads another's. */
  purpose: string;
  /** fdatasync at most this long after a commit (default 1000 ms; 0: at every commit). */
  syncMs?: number;
  /** Compact when the file is larger than this and twice its last compacted size (default 1 MiB). */
  compactMinBytes?: number;
}

interface Batch {
  p?: Array<[string, unknown]>;
  d?: string[];
}

const nonceOf = (i: number) => {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(i), 4);
  return n;
};

export class JournalStore implements StateStore {
  readonly path: string;
  /** Live records: key -> the value as JSON. */
  private readonly live = new Map<string, string>();
  private fd: number | undefined;
  private fileId: Buffer = Buffer.alloc(16);
  private key: Buffer = Buffer.alloc(32);
  private index = 0;
  private bytes = 0;
  private compactedBytes = 0;
  private compactedAt = 0;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private loadProblem: string | null = null;

  constructor(private readonly o: JournalStoreOptions) {
    if (o.key.length !== 32) throw new Error('state store key must be 32 bytes');
    this.path = join(o.dir, o.file ?? 'state.journal');
  }

  async load(): Promise<Map<string, unknown>> {
    if (this.fd !== undefined) throw new Error('state store already loaded');
    if (!existsSync(this.o.dir)) mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    if (existsSync(this.path)) {
      checkPrivate(this.path, 'state journal');
      this.read(readFileSync(this.path));
    }
    // Always start a fresh file: nothing is appended after a record that failed, and record
    // numbers (nonces) never repeat under one key.
    this.compact();
    const out = new Map<string, unknown>();
    for (const [k, v] of this.live) out.set(k, JSON.parse(v));
    return out;
  }

  /** Reads records until the end or the first one that does not verify. */
  private read(buf: Buffer): void {
    if (buf.length < HEADER_LEN || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
      this.loadProblem = buf.length === 0 ? null : 'not a GSRA state journal: ignored';
      if (buf.length) this.setAside();
      return;
    }
    const id = buf.subarray(MAGIC.length, HEADER_LEN);
    const key = fileKey(this.o.key, id, this.o.purpose);
    let off = HEADER_LEN;
    let i = 0;
    while (off < buf.length) {
      const n = off + 4 <= buf.length ? buf.readUInt32BE(off) : -1;
      const body = n >= TAG_LEN && n <= MAX_RECORD ? buf.subarray(off + 4, off + 4 + n) : undefined;
      const batch = body && body.length === n ? this.open(key, id, i, body) : undefined;
      if (!batch) {
        const left = buf.length - off;
        this.loadProblem =
          i === 0
            ? 'the state key does not open this journal (another key file?): state ignored'
            : `record ${i} does not verify (torn by a crash?): ${left} bytes after it ignored`;
        if (i === 0) this.setAside();
        return;
      }
      for (const k of batch.d ?? []) this.live.delete(k);
      for (const [k, v] of batch.p ?? []) this.live.set(k, JSON.stringify(v));
      off += 4 + n;
      i++;
    }
  }

  /** Keeps a journal this store cannot read next to it, for an operator to look at. */
  private setAside(): void {
    renameSync(this.path, `${this.path}.unreadable-${Date.now()}`);
  }

  private open(key: Buffer, id: Buffer, i: number, body: Buffer): Batch | undefined {
    try {
      const d = createDecipheriv('aes-256-gcm', key, nonceOf(i));
      d.setAAD(Buffer.concat([MAGIC, id, nonceOf(i).subarray(4)]));
      d.setAuthTag(body.subarray(body.length - TAG_LEN));
      const plain = Buffer.concat([d.update(body.subarray(0, body.length - TAG_LEN)), d.final()]);
      return JSON.parse(plain.toString('utf8')) as Batch;
    } catch {
      return undefined;
    }
  }

  private seal(json: string): Buffer {
    const i = this.index++;
    const c = createCipheriv('aes-256-gcm', this.key, nonceOf(i));
    c.setAAD(Buffer.concat([MAGIC, this.fileId, nonceOf(i).subarray(4)]));
    const ct = Buffer.concat([c.update(json, 'utf8'), c.final(), c.getAuthTag()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(ct.length);
    return Buffer.concat([len, ct]);
  }

  private static json(put: Array<[string, string]>, del: string[]): string {
    const p = put.map(([k, v]) => `[${JSON.stringify(k)},${v}]`).join(',');
    return `{"p":[${p}],"d":${JSON.stringify(del)}}`;
  }

  commit(batch: StoreBatch): void {
    if (this.fd === undefined) throw new Error('state store not loaded');
    const put: Array<[string, string]> = batch.put.map(([k, v]) => [k, JSON.stringify(v)]);
    for (const k of batch.del) this.live.delete(k);
    for (const [k, v] of put) this.live.set(k, v);
    const rec = this.seal(JournalStore.json(put, batch.del));
    writeSync(this.fd, rec);
    this.bytes += rec.length;
    this.dirty = true;
    if (this.bytes > Math.max(this.o.compactMinBytes ?? 1 << 20, 2 * this.compactedBytes)) this.compact();
    else this.scheduleSync();
  }

  private scheduleSync(): void {
    const ms = this.o.syncMs ?? 1000;
    if (ms === 0) return this.sync();
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.sync();
    }, ms);
    this.syncTimer.unref();
  }

  sync(): void {
    if (this.fd === undefined || !this.dirty) return;
    fdatasyncSync(this.fd);
    this.dirty = false;
  }

  /** Writes the live records to a fresh file and puts it in place of the journal. */
  private compact(): void {
    const tmp = `${this.path}.tmp`;
    this.fileId = randomBytes(16);
    this.key = fileKey(this.o.key, this.fileId, this.o.purpose);
    this.index = 0;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, Buffer.concat([MAGIC, this.fileId]));
      const all = [...this.live];
      for (let i = 0; i < all.length; i += SNAPSHOT_CHUNK)
        writeSync(fd, this.seal(JournalStore.json(all.slice(i, i + SNAPSHOT_CHUNK), [])));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    // the rename reaches the disk with the folder (POSIX); Windows cannot open a folder to
    // flush it, and NTFS journals the rename itself
    if (process.platform !== 'win32') {
      const dirFd = openSync(this.o.dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = openSync(this.path, 'a', 0o600);
    this.bytes = this.compactedBytes = fstatSync(this.fd).size;
    this.compactedAt = Date.now();
    this.dirty = false;
  }

  info(): StoreInfo {
    return {
      where: `journal ${this.path}`,
      records: this.live.size,
      bytes: this.bytes,
      compactedAt: this.compactedAt,
      loadProblem: this.loadProblem,
    };
  }

  close(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.fd === undefined) return;
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}
