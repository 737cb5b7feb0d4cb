// Generated from native/src (engine/stats.rs, engine/drops.rs, engine/events.rs, engine/flow.rs) by
// the Rust test napi::typescript::generated_names_are_current; do not edit. To regenerate, in
// native/:
//   GSRA_WRITE_GENERATED=1 cargo test --release --lib typescript

/** The engine's counters, as `stats()` reports them. */
export const ENGINE_COUNTERS = [
  'packets',
  'translatedOut',
  'translatedIn',
  'acceptedPlain',
  'dropped',
  'malformed',
  'fragments',
  'noFlow',
  'verifyFailed',
  'replay',
  'wrongSource',
  'portDenied',
  'noRoom',
  'cryptoErrors',
  'held',
  'heldReleased',
  'heldFailed',
  'heldOverflow',
  'heldExpired',
  'poolTaken',
  'notFirst',
  'punted',
  'puntExpired',
  'icmpTranslated',
  'bound',
  'roamed',
  'probesSent',
  'probesReceived',
  'expired',
  'eventsDropped',
  'panics',
] as const;
export type EngineCounter = (typeof ENGINE_COUNTERS)[number];

/** Why the engine refuses a packet (`stats().drops`, a `drop` verdict's `reason`). */
export const DROP_REASONS = [
  'malformed',
  'fragment',
  'no-flow',
  'wrong-source',
  'port-denied',
  'port-mismatch',
  'no-mac',
  'bad-mac',
  'replay',
  'syn-replay',
  'new-connection',
  'closed',
  'old-data',
  'binding-full',
  'no-room',
  'crypto',
  'key-exhausted',
  'icmp-invalid',
  'icmp-mtu-floor',
  'held-overflow',
  'held-expired',
  'held-failed',
  'not-first',
  'punt-expired',
  'punt-refused',
  'panic',
  'probe',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Every event `type` the engine emits. */
export const ENGINE_EVENT_TYPES = [
  'held',
  'pool-taken',
  'held-expired',
  'bound',
  'expired',
  'verify-failed',
  'punt',
] as const;
export type EngineEventType = (typeof ENGINE_EVENT_TYPES)[number];

/** The states of a flow (`flowStats().state`, `expired` events). */
export const FLOW_STATES = ['reserved', 'handshake', 'established', 'closing', 'closed', 'udp'] as const;
export type FlowState = (typeof FLOW_STATES)[number];

/** How a flow's traffic ended (`flowStats().close`, `expired` events). */
export const FLOW_CLOSES = ['none', 'fin', 'rst', 'verify-failed'] as const;
export type FlowClose = (typeof FLOW_CLOSES)[number];
