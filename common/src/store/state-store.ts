// Where a daemon keeps the state its live flows need across a restart (docs/reliability.md): the
// gateway's sessions and reservation rows, the agent's session, VAT entries and VINs. A store is a
// map of records (key -> JSON value) written in batches; the daemon reads it once at start and
// commits a batch after each change, before it answers anyone about that change.
//
// The embedded store (journal-store.ts: a file in the daemon's state directory, encrypted, crash
// safe) is the default; a replicated store (a later standby gateway) implements the same
// interface, typically with an asynchronous commit: the daemon then sends what depends on a
// batch only once its commit resolved (see commitThen()).

/** One batch of changes, applied in order: deletions first, then puts. */
export interface StoreBatch {
  put: Array<[key: string, value: unknown]>;
  del: string[];
}

export interface StoreInfo {
  /** What backs the store, for logs (e.g. "journal /var/lib/gsra-gateway/state.journal"). */
  where: string;
  records: number;
  /** Size on disk now (bytes), and when the store last rewrote itself (ms since the epoch). */
  bytes: number;
  compactedAt: number;
  /** What the last load dropped: a torn tail after a crash, or a file the key cannot read. */
  loadProblem: string | null;
}

export interface StateStore {
  /** Every record as last committed. Called once, at start, before any commit. */
  load(): Promise<Map<string, unknown>>;
  /**
   * Applies a batch. All of it or none of it survives a crash. The embedded store returns once
   * the batch is in the file (a killed process loses nothing; a power cut loses at most the last
   * `syncMs`); a replicated store may return a promise that resolves once the batch is durable.
   */
  commit(batch: StoreBatch): void | Promise<void>;
  /** Everything committed reaches stable storage now. */
  sync(): void | Promise<void>;
  info(): StoreInfo;
  close(): void | Promise<void>;
}

export const emptyBatch = (): StoreBatch => ({ put: [], del: [] });
export const isEmptyBatch = (b: StoreBatch): boolean => b.put.length === 0 && b.del.length === 0;

/**
 * Commits `batch`, then runs `then` — at once when the store wrote it synchronously, otherwise
 * once the commit resolved, in commit order. Returns the chain to wait on (or undefined).
 */
export function commitThen(
  store: StateStore,
  batch: StoreBatch,
  then: () => void,
  previous?: Promise<void>,
): Promise<void> | undefined {
  const done = isEmptyBatch(batch) ? undefined : store.commit(batch);
  if (!done && !previous) {
    then();
    return undefined;
  }
  return Promise.all([previous, done]).then(then);
}
