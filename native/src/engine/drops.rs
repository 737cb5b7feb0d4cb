//! Why the engine refused a packet. Every reason is declared once, here, with the name TypeScript,
//! the logs and the Prometheus label see (`native/lib/names.generated.ts` is rendered from
//! `Reason::NAMES`); `Stats::drops` counts packets per reason, and a packet's verdict carries its
//! reason.

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason as TypeScript names it, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            pub fn as_str(&self) -> &'static str {
                Self::NAMES[*self as usize]
            }
        }
    };
}

reasons! {
    /// Not a well-formed IPv4 TCP/UDP/ICMP packet (or a protocol the engine does not carry).
    Malformed = "malformed",
    /// An IPv4 fragment.
    Fragment = "fragment",
    /// Addressed to the engine's range but no flow or reservation matches.
    NoFlow = "no-flow",
    /// From a source the flow is not bound to (or not being bound to): the internet side after
    /// binding, or not the flow's PIN:d on the LAN side.
    WrongSource = "wrong-source",
    /// The first packet names a service port the reservation does not allow.
    PortDenied = "port-denied",
    /// A verified packet names another service port than the flow's.
    PortMismatch = "port-mismatch",
    /// No PCCOM option or trailer (or one of the wrong shape).
    NoMac = "no-mac",
    /// The MAC (the synthetic IV) does not match the packet.
    BadMac = "bad-mac",
    /// UDP: a datagram counter already accepted, or older than the replay window.
    Replay = "replay",
    /// TCP: an initial SYN for a connection that is established or closing.
    SynReplay = "syn-replay",
    /// TCP: a SYN with another initial sequence number on a flow that carries one connection.
    NewConnection = "new-connection",
    /// TCP: anything from the internet after the connection closed (both FINs acknowledged, or RST).
    Closed = "closed",
    /// TCP: the payload (and FIN) of a segment the receiving end has already acknowledged; only
    /// the bare header is passed, so that end acknowledges again. The packet itself is not dropped.
    OldData = "old-data",
    /// Too many sources sent a verified SYN for one reservation before it bound.
    BindingFull = "binding-full",
    /// No room for the PCCOM option (or the packet would exceed 65535 bytes).
    NoRoom = "no-room",
    /// A crypto call failed.
    Crypto = "crypto",
    /// The flow's key protected its packet limit (docs/pccom.md §3): it must be rekeyed.
    KeyExhausted = "key-exhausted",
    /// An ICMP error about a flow that does not validate (quoted sequence outside the window, an
    /// unauthenticated hard error, a deprecated type).
    IcmpInvalid = "icmp-invalid",
    /// An ICMP "fragmentation needed" with an MTU below the engine's floor.
    IcmpMtuFloor = "icmp-mtu-floor",
    /// Agent: more packets held than the bounds allow (also punts).
    HeldOverflow = "held-overflow",
    /// Agent: a held packet waited too long.
    HeldExpired = "held-expired",
    /// Agent: the negotiation for a held packet failed (the application is answered).
    HeldFailed = "held-failed",
    /// Agent: a TCP segment without SYN for a connection the agent does not know (it ended, or
    /// the agent lost it): never held, never sent; the application gets a RST.
    NotFirst = "not-first",
    /// A punted packet waited too long for TypeScript's verdict.
    PuntExpired = "punt-expired",
    /// TypeScript refused a punted packet (or its replacement was not acceptable).
    PuntRefused = "punt-refused",
    /// A panic was caught while processing the packet.
    Panic = "panic",
    /// Not a refusal: a verified probe the engine consumed (docs/pccom.md §6.1). It is the
    /// verdict's reason only; probes are counted as `probesReceived`, never in `drops`.
    Probe = "probe",
}

/// Packets per reason.
#[derive(Debug, Clone)]
pub struct Drops(pub [u64; Reason::NAMES.len()]);

impl Default for Drops {
    fn default() -> Drops {
        Drops([0; Reason::NAMES.len()])
    }
}

impl Drops {
    pub fn add(&mut self, r: Reason, n: u64) {
        self.0[r as usize] += n;
    }

    pub fn get(&self, r: Reason) -> u64 {
        self.0[r as usize]
    }

    /// Calls `f` with each reason's name and count, in declaration order.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        for r in Reason::ALL {
            f(r.as_str(), self.0[*r as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_name_in_order() {
        assert_eq!(Reason::ALL.len(), Reason::NAMES.len());
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert_eq!(Reason::OldData.as_str(), "old-data");
    }
}
