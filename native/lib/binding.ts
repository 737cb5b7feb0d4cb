// Loading the addon (native/gsra_native.<platform>.node, built by native/build.sh) and its raw exports.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineStats, FlowStats, EngineEvent, Hook, ProcessResult } from './types.ts';
import type { WinDivertHandle } from './windows.ts';

/** The addon's exports as native/src/napi declares them (arguments are checked there). */
export interface NativeBinding {
  abiVersion: number;
  createEngine(o: unknown): unknown;
  addFlow(h: unknown, spec: unknown): void;
  removeFlow(h: unknown, id: unknown): boolean;
  resetFlow(h: unknown, id: unknown): boolean;
  importFlow(h: unknown, spec: unknown, snapshot: unknown): void;
  flowSnapshots(h: unknown): { id: number; snapshot: Buffer }[];
  flowSnapshot(h: unknown, id: unknown): Buffer | null;
  process(h: unknown, p: unknown, hook: unknown): ProcessResult;
  takeReleased(h: unknown): { hook: Hook; packet: Buffer }[];
  processInto(h: unknown, p: unknown, hook: unknown, out: unknown): number;
  failHeld(h: unknown, key: unknown, mode: unknown): number;
  poolAdd(h: unknown, port: unknown): void;
  poolRenew(h: unknown, proto: unknown, t: unknown, validMs: unknown): boolean;
  poolWithdraw(h: unknown, proto: unknown, t: unknown): boolean;
  poolClear(h: unknown): number;
  poolExclude(h: unknown, vin: unknown, d: unknown, on: unknown): void;
  verdict(h: unknown, id: unknown, accept: unknown, replacement: unknown): boolean;
  stats(h: unknown): EngineStats;
  flowStats(h: unknown, id: unknown): FlowStats | null;
  pollEvents(h: unknown): EngineEvent[];
  onEvents(h: unknown, cb: unknown): void;
  startNfqueue(h: unknown, o: unknown): void;
  stop(h: unknown): void;
  sweep(h: unknown): void;
  probe(h: unknown, id: unknown): number;
  benchLoop(payloadBytes: unknown, seconds: unknown): { packets: number; seconds: number };
  winDivertFilters(o: unknown): WinDivertHandle[];
  checkWinDivert(dir: unknown, o: unknown): WinDivertHandle[];
  startWinDivert(h: unknown, o: unknown): void;
  dpapiProtect(data: unknown, machine: unknown): Buffer;
  dpapiUnprotect(data: unknown): Buffer;
  /** HKDF-SHA256 of ikm and salt for each infoLen-byte info in infos, outLen bytes each (Linux). */
  hkdfSha256(ikm: Buffer, salt: Buffer, infos: Buffer, infoLen: number, outLen: number): Buffer;
  /** HMAC-SHA256(key, data), 32 bytes. */
  hmacSha256(key: Buffer, data: Buffer): Buffer;
  /** Every event type the engine emits (checked against names.generated.ts by napi.test.ts). */
  eventTypes: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
/**
 * The addon for this platform, named as `napi build --platform` names it
 * (gsra_native.linux-x64-gnu.node, gsra_native.win32-x64-gnu.node). native/build.sh puts it in
 * native/; the Windows bundle keeps it beside the bundled agent (dist/win), where this code is.
 */
const addonName = `gsra_native.${process.platform}-${process.arch}-gnu.node`;
export const addonPath = existsSync(join(here, addonName))
  ? join(here, addonName)
  : join(here, '..', addonName);

let binding: NativeBinding | undefined;
/** Loads the addon (once). Throws with a hint if it has not been built. */
export function native(): NativeBinding {
  if (!binding) {
    if (!existsSync(addonPath))
      throw new Error(
        `${addonPath} is missing: run bash native/build.sh${process.platform === 'win32' ? ' --windows (on Linux)' : ''}`,
      );
    binding = createRequire(import.meta.url)(addonPath) as NativeBinding;
  }
  return binding;
}
