// What the agent keeps across a restart of itself (docs/reliability.md), in the embedded state
// store (common/src/store/: an encrypted journal, agent.journal in stateDir): each group's session
// (AgentControl.save(): secret, channel numbers, pooled ports), the VAT entries of live TCP flows,
// the FTP aliases, and the VINs names were given. Flow keys are not kept: they are derived again
// from the session secret and the port's serial. The store's key is a file only the agent can
// read (state.key: 0600 on Linux, DPAPI-encrypted on Windows, as the cached login is).
//
// Records: "g/<group>" (AgentSessionState), "f/<proto>/<src>/<sport>/<dst>/<dport>" (FlowRecord),
// "a/<vin>:<port>" (AliasRecord), "vins" (the VIN table).
import { randomBytes } from 'node:crypto';
import { JournalStore, emptyBatch, type StateStore, type StoreBatch, protocol } from '@gsra/common';
import * as linux from './protected-file-linux.ts';
import * as windows from './protected-file-windows.ts';
import type { FiveTuple } from './data-plane.ts';
import type { VinEntry } from './vin.ts';

const protectedFile = process.platform === 'win32' ? windows : linux;
const KEY_NAME = process.platform === 'win32' ? 'state-key.dpapi' : 'state.key';

/** A live flow as the store keeps it: its 5-tuple on EN, its port t and the serial of its keys. */
export interface FlowRecord {
  group: string;
  name: string;
  key: FiveTuple;
  t: number;
  serial: number;
  started: number;
  bound?: string;
  /** The engine's last snapshot of the flow (base64), when it had one. */
  snapshot?: string;
}

/** An FTP data port the gateway reserved for a passive reply (FTP_ALIAS). */
export interface AliasRecord {
  group: string;
  name: string;
  t: number;
  serial: number;
  expiresAt: number;
}

export interface SavedAgent {
  sessions: Map<string, protocol.AgentSessionState>;
  flows: FlowRecord[];
  aliases: Map<string, AliasRecord>;
  vins: VinEntry[];
}

export const flowKey = (k: FiveTuple) => `f/${k.proto}/${k.src}/${k.sport}/${k.dst}/${k.dport}`;

/** The store key: made once (32 random bytes), kept like the cached login. */
function storeKey(stateDir: string): Buffer {
  const have = protectedFile.readProtected(stateDir, KEY_NAME);
  if (have?.length === 32) return have;
  const key = randomBytes(32);
  protectedFile.writeProtected(stateDir, key, KEY_NAME);
  return key;
}

/** The agent's embedded store in stateDir. */
export function openAgentStore(stateDir: string): StateStore {
  return new JournalStore({
    dir: stateDir,
    file: 'agent.journal',
    key: storeKey(stateDir),
    purpose: 'agent',
  });
}

export class AgentState {
  private batch: StoreBatch = emptyBatch();
  private closed = false;

  constructor(readonly store: StateStore) {}

  async load(): Promise<SavedAgent> {
    const out: SavedAgent = { sessions: new Map(), flows: [], aliases: new Map(), vins: [] };
    for (const [k, v] of await this.store.load()) {
      if (k.startsWith('g/')) out.sessions.set(k.slice(2), v as protocol.AgentSessionState);
      else if (k.startsWith('f/')) out.flows.push(v as FlowRecord);
      else if (k.startsWith('a/')) out.aliases.set(k.slice(2), v as AliasRecord);
      else if (k === 'vins') out.vins = v as VinEntry[];
    }
    return out;
  }

  put(key: string, value: unknown): void {
    this.batch.put.push([key, value]);
  }
  del(key: string): void {
    this.batch.del.push(key);
    this.batch.put = this.batch.put.filter(([k]) => k !== key);
  }

  /** Writes what was put and deleted since the last call (before anything depending on it is sent). */
  flush(): void {
    const b = this.batch;
    if (this.closed || (b.put.length === 0 && b.del.length === 0)) return;
    this.batch = emptyBatch();
    void this.store.commit(b);
  }

  async close(): Promise<void> {
    this.flush();
    this.closed = true;
    await this.store.close();
  }
}
