// @gsra/native: the typed TypeScript API of the GSRA packet engine (Rust, N-API).
// The data-plane format is specified in docs/pccom.md; this is the API the agent and the gateway
// build on. Keys arrive as raw bytes (derived by the control protocol); the engine never logs them.
//   lib/engine.ts   the Engine class, directionKeys(), benchLoop()
//   lib/types.ts    the API's types
//   lib/rules.ts    iptables rules for the NFQUEUE backend
//   lib/queues.ts   queues per side and how flows spread over them
//   lib/windows.ts  the Windows agent's WinDivert handles and DPAPI
//   lib/drops.ts    refused packets for operators: Prometheus counters and summary log lines
//   lib/binding.ts  loading the addon
//   lib/names.generated.ts  counter, event-type and flow-state names (rendered from native/src)
export * from './lib/types.ts';
export * from './lib/names.generated.ts';
export {
  Engine,
  COMPAT_WARNING,
  benchLoop,
  directionKeys,
  PROCESS_DROP,
  PROCESS_HELD,
  PROCESS_PUNTED,
  POOL_FIRST_ID,
} from './lib/engine.ts';
export { native, addonPath, type NativeBinding } from './lib/binding.ts';
export {
  agentRules,
  ensureRules,
  gatewayRules,
  installRules,
  removeRules,
  splitRuleLine,
  type Rule,
  type Queues,
} from './lib/rules.ts';
export { queueLayout, queueIndexOfPort, MAX_QUEUES_PER_SIDE } from './lib/queues.ts';
export * from './lib/windows.ts';
export { DropSummary, syncCounter, warnDropLines, type DropCounts, type DropLine } from './lib/drops.ts';
