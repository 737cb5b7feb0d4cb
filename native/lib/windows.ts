// The Windows side of the engine's API: the agent's WinDivert handles (the twin of agentRules()
// in rules.ts) and DPAPI for the cached login. native/src/napi/windows.rs; docs/windows.md.
import { native } from './binding.ts';

export interface WinDivertRules {
  /** The VIN range, e.g. '198.19.224.0/20'. */
  vinNet: string;
  ggr: string;
  /** GGR's reserved port range [first, last]. */
  ports: [number, number];
  /** DNS servers whose answers are examined; absent or empty = any (as on Linux). */
  resolvers?: string[];
}

export interface WinDivertOptions extends WinDivertRules {
  /** Absolute folder with WinDivert.dll and WinDivert64.sys (the agent's install folder). */
  dir: string;
  /** Driver queue length per handle (default 8192, 32..16384). */
  queueLen?: number;
  /** Packets per WinDivertRecvEx (default 64, max 255). */
  batch?: number;
}

export interface WinDivertHandle {
  role: 'out' | 'in' | 'dns' | 'guard';
  filter: string;
  priority: number;
  /** The guard: WINDIVERT_FLAG_DROP. */
  drop: boolean;
}

/** The agent's WinDivert handles with their filters (any platform; nothing is opened). */
export function winDivertFilters(o: WinDivertRules): WinDivertHandle[] {
  return native().winDivertFilters(o);
}

/**
 * Windows: loads `dir`\\WinDivert.dll and compiles every filter with WinDivert's own compiler
 * (needs no driver and no administrator). Throws with WinDivert's message on a bad filter.
 */
export function checkWinDivert(dir: string, o: WinDivertRules): WinDivertHandle[] {
  return native().checkWinDivert(dir, o);
}

/** Windows DPAPI: machine scope binds the blob to this PC (see native/src/dpapi_windows.rs). */
export function dpapiProtect(data: Uint8Array, scope: 'machine' | 'user'): Buffer {
  return native().dpapiProtect(data, scope === 'machine');
}

export function dpapiUnprotect(blob: Uint8Array): Buffer {
  return native().dpapiUnprotect(blob);
}
