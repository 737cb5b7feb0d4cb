// The gateway's state across a restart (docs/reliability.md): its store (embedded by default: an
// encrypted journal under `stateDir`, common/src/store/), what is written to it, and how a start
// puts it back - sessions and rows into GatewayControl, their ports into the pool, each row into
// the data plane. Records: "s/<session id>" (SessionRecord), "r/<row id>" (RowRecord) and, when the
// engine exports flow state, "f/<row id>" (EngineFlowState).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  commitThen,
  emptyBatch,
  JournalStore,
  loadOrCreateKeyFile,
  type Logger,
  type StateStore,
  type StoreBatch,
  protocol,
} from '@gsra/common';
import type { DataPlane, EngineFlowState, FlowStateHooks } from './data-plane.ts';
import type { PortPool } from './ports.ts';

type Reservation = protocol.Reservation;

/** The embedded store the config names (a key file is made on first start). */
export function openGatewayStore(
  c: { dir: string; keyFile?: string; syncMs: number },
  log: Logger,
): StateStore {
  const keyFile = c.keyFile ?? join(c.dir, 'state.key');
  mkdirSync(c.dir, { recursive: true, mode: 0o700 });
  const { key, created } = loadOrCreateKeyFile(keyFile);
  if (created) log.info('state key created', { keyFile });
  return new JournalStore({ dir: c.dir, key, purpose: 'gateway', syncMs: c.syncMs });
}

/** What a restart put back. */
export interface Restored {
  sessions: number;
  rows: number;
  /** Bound flows the engine took with their state (only an engine with FlowStateHooks). */
  carried: number;
  /** Bound flows the data plane could not carry on: ended, their agents told. */
  lost: Reservation[];
  dropped: number;
}

export class GatewayState {
  /** Sends waiting for an asynchronous commit (a replicated store), in order. */
  private pending: Promise<void> | undefined;

  constructor(
    readonly store: StateStore,
    private readonly log: Logger,
  ) {}

  /**
   * Reads the store and puts its sessions and rows back: the pool takes their ports, the data
   * plane their rows (with the engine's flow state when it can take it). Call before the data
   * plane starts, so the engine knows every row before the first packet.
   */
  async restore(
    control: protocol.GatewayControl,
    pool: PortPool,
    dataPlane: DataPlane | undefined,
    now: number,
  ): Promise<Restored> {
    const records = await this.store.load();
    const problem = this.store.info().loadProblem;
    if (problem) this.log.warn('state store: part of the saved state could not be read', { reason: problem });
    const sessions: protocol.SessionRecord[] = [];
    const rows: protocol.RowRecord[] = [];
    const flows = new Map<number, EngineFlowState>();
    for (const [k, v] of records) {
      if (k.startsWith('s/')) sessions.push(v as protocol.SessionRecord);
      else if (k.startsWith('r/')) rows.push(v as protocol.RowRecord);
      else if (k.startsWith('f/')) flows.set(Number(k.slice(2)), v as EngineFlowState);
    }
    const r = control.restore({ sessions, rows }, now);
    const out: Restored = {
      sessions: r.sessions,
      rows: r.rows.length,
      carried: 0,
      lost: [],
      dropped: r.dropped,
    };
    for (const row of r.rows) {
      if (!pool.claim({ user: row.user, source: row.en.addr }, row.t))
        this.log.warn('restored reservation outside the port range or twice', { t: row.t });
      const st = flows.get(row.id);
      if (st && dataPlane?.flowState && this.carry(dataPlane.flowState, row, st)) out.carried++;
      else if (row.binding)
        out.lost.push(row); // bound, and the engine cannot take its state (UDP, or refused)
      else dataPlane?.add(row);
    }
    return out;
  }

  private carry(hooks: FlowStateHooks, row: Reservation, st: EngineFlowState): boolean {
    try {
      hooks.import(row, st);
      return true;
    } catch (e) {
      this.log.warn('flow state refused at restore', {
        user: row.user,
        group: row.group,
        in: row.inName,
        t: row.t,
        reason: (e as Error).message,
      });
      return false;
    }
  }

  /** The store batch for a control delta (and engine flow states, when the engine exports them). */
  batch(delta: protocol.StateDelta, flows: Array<[number, EngineFlowState | null]> = []): StoreBatch {
    const b = emptyBatch();
    for (const [id, rec] of delta.sessions) {
      if (rec) b.put.push([`s/${id}`, rec]);
      else b.del.push(`s/${id}`);
    }
    for (const [id, rec] of delta.rows) {
      if (rec) b.put.push([`r/${id}`, rec]);
      else b.del.push(`r/${id}`, `f/${id}`);
    }
    for (const [id, st] of flows) {
      if (delta.rows.get(id) === null) continue;
      if (st) b.put.push([`f/${id}`, st]);
      else b.del.push(`f/${id}`);
    }
    return b;
  }

  /**
   * Writes the changes, then runs `send` - at once with the embedded store (the write is done
   * when commit returns), after the commit with an asynchronous one - always in order.
   */
  commit(batch: StoreBatch, send: () => void): void {
    try {
      this.pending = commitThen(this.store, batch, send, this.pending);
    } catch (e) {
      // the disk is full or gone: go on serving (flows keep working) and say so; a restart
      // then loses what could not be written
      this.log.error('state store: write failed', { reason: (e as Error).message });
      send();
    }
  }

  async close(): Promise<void> {
    await this.pending;
    await this.store.close();
  }
}
