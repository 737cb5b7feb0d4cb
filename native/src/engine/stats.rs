//! The engine's counters. Each is declared once, here, with the name TypeScript sees:
//! `Stats::for_each` feeds the N-API `stats()` object and `native/lib/names.generated.ts` is
//! rendered from `Stats::NAMES` (a Rust test fails when it is stale). Besides them, `drops` counts
//! refused packets by reason (drops.rs), reported as `stats().drops`.

use super::drops::{Drops, Reason};

macro_rules! counters {
    ($( $(#[$doc:meta])* $field:ident = $name:literal, )*) => {
        #[derive(Debug, Default, Clone)]
        pub struct Stats {
            $( $(#[$doc])* pub $field: u64, )*
            /// Refused packets by reason (`dropped` is their total, without `old-data`, whose
            /// packets pass as bare headers).
            pub drops: Drops,
        }

        impl Stats {
            /// Every counter as TypeScript names it, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Calls `f` with each counter's TypeScript name and value, in declaration order.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
                $( f($name, self.$field); )*
            }
        }
    };
}

counters! {
    /// Packets given to the engine.
    packets = "packets",
    translated_out = "translatedOut",
    translated_in = "translatedIn",
    /// Passed unchanged (ICMP that quotes no flow, echo).
    accepted_plain = "acceptedPlain",
    dropped = "dropped",
    malformed = "malformed",
    fragments = "fragments",
    no_flow = "noFlow",
    verify_failed = "verifyFailed",
    replay = "replay",
    wrong_source = "wrongSource",
    port_denied = "portDenied",
    no_room = "noRoom",
    crypto_errors = "cryptoErrors",
    held = "held",
    held_released = "heldReleased",
    held_failed = "heldFailed",
    held_overflow = "heldOverflow",
    held_expired = "heldExpired",
    /// Agent: new flows that took a pooled port in the engine, without TypeScript (pool.rs).
    pool_taken = "poolTaken",
    /// Agent: TCP segments without SYN for a connection with no VAT entry (dropped; the
    /// application gets a RST).
    not_first = "notFirst",
    punted = "punted",
    punt_expired = "puntExpired",
    icmp_translated = "icmpTranslated",
    bound = "bound",
    /// Gateway: bindings that moved to a new source on a verified, newer packet (roaming).
    roamed = "roamed",
    /// Agent: probes sent (NAT keepalives, quiet-flow probes, probes asked for); gateway:
    /// probes verified and consumed.
    probes_sent = "probesSent",
    probes_received = "probesReceived",
    expired = "expired",
    events_dropped = "eventsDropped",
    /// Panics caught while processing a packet (the packet is dropped).
    panics = "panics",
}

impl Stats {
    /// Counts a dropped packet under its reason.
    pub fn count_drop(&mut self, r: Reason) {
        self.dropped += 1;
        self.drops.add(r, 1);
    }
}
