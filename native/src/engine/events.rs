//! What the engine tells TypeScript. Each event type is declared once, here, with the name
//! TypeScript sees; `native/lib/names.generated.ts` is rendered from `Event::TYPES` (a Rust test
//! fails when it is stale).

use super::{Engine, FlowCounters, Hook};

macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal { $($field:ident : $ty:ty),* $(,)? } )*) => {
        #[derive(Debug, Clone)]
        pub enum Event {
            $( $(#[$doc])* $variant { $($field: $ty),* }, )*
        }

        impl Event {
            /// Every event type as TypeScript names it, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            /// This event's `type` as TypeScript names it.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Event::$variant { .. } => $name, )*
                }
            }
        }
    };
}

events! {
    /// Agent: the first packet of an unknown 5-tuple into the VIN range was held (once per 5-tuple).
    Held = "held" { proto: u8, src: u32, sport: u16, dst: u32, dport: u16 }
    /// Agent: the first packet of a new flow took pooled port t (pool.rs); the VAT entry `id` exists
    /// and the packet left. `serial` = the serial of the port's keys.
    PoolTaken = "pool-taken" { id: u32, proto: u8, t: u16, serial: u32, src: u32, sport: u16, dst: u32, dport: u16 }
    /// Held packets timed out (dropped).
    HeldExpired = "held-expired" { proto: u8, src: u32, sport: u16, dst: u32, dport: u16, count: u32 }
    /// Gateway: a reservation bound in-band on its first verified packet.
    Bound = "bound" { id: u32, proto: u8, t: u16, ghr: u32, m: u16, pin: u32, d: u16 }
    /// A flow or reservation timed out (`state` = the state it was in), or was `replaced`;
    /// `close` = how its traffic ended (flow::Close), `c` = its counters at the end.
    Expired = "expired" { id: u32, proto: u8, t: u16, state: &'static str, close: &'static str, c: FlowCounters }
    /// MAC, replay or source failures; at most one per flow per second, `count` = failures since the last.
    VerifyFailed = "verify-failed" { id: Option<u32>, proto: u8, src: u32, sport: u16, dport: u16, reason: &'static str, count: u64 }
    /// A packet handed to TypeScript; `flow` = the flow of an ALG punt (gateway), None for a punt rule's.
    Punt = "punt" { id: u64, hook: Hook, flow: Option<u32>, bytes: Vec<u8> }
}

impl Engine {
    /// Queues an event for TypeScript; beyond `max_events` it is counted and dropped.
    pub(super) fn event(&mut self, e: Event) {
        if self.events.len() >= self.cfg.max_events {
            self.stats.events_dropped += 1;
        } else {
            self.events.push(e);
        }
    }
}
