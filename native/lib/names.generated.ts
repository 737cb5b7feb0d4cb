// Generated from native/src (engine/stats.rs, engine/events.rs, engine/flow.rs) by the Rust test
// napi::typescript::generated_names_are_current; do not edit. To regenerate, in native/:
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
  'punted',
  'puntExpired',
  'icmpTranslated',
  'bound',
  'expired',
  'eventsDropped',
  'panics',
] as const;
export type EngineCounter = (typeof ENGINE_COUNTERS)[number];

/** Every event `type` the engine emits. */
export const ENGINE_EVENT_TYPES = [
  'held',
  'held-expired',
  'bound',
  'expired',
  'verify-failed',
  'punt',
] as const;
export type EngineEventType = (typeof ENGINE_EVENT_TYPES)[number];

/** The states of a flow (`flowStats().state`, `expired` events). */
export const FLOW_STATES = ['reserved', 'handshake', 'established', 'closing', 'udp'] as const;
export type FlowState = (typeof FLOW_STATES)[number];
