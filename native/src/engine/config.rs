//! What an engine is told when it is created: its role, its addresses, timeouts, punt rules, ALG
//! ports and bounds.

use super::Hook;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Gateway,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub tcp_handshake: u64,
    pub tcp_established: u64,
    /// Closing: one FIN (a half-closed connection may stay quiet for a while).
    pub tcp_closing: u64,
    /// Closed: FINs both ways or a RST; long enough for a last ACK or a FIN retransmission.
    pub tcp_closed: u64,
    pub udp_idle: u64,
    pub reservation: u64,
    pub held: u64,
    /// Agent: a probe on a live flow that sent nothing for this long keeps the home NAT's mapping
    /// (docs/pccom.md §6.1; 0 = never).
    pub keepalive: u64,
    /// Agent: a TCP flow whose traffic stopped this long ago is probed, at this pace, for
    /// `probe::QUIET_SPAN` (0 = never).
    pub quiet_probe: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { tcp_handshake: 30_000, tcp_established: 7_200_000, tcp_closing: 120_000, tcp_closed: 5_000, udp_idle: 180_000, reservation: 30_000, held: 10_000, keepalive: 25_000, quiet_probe: 500 }
    }
}

/// Packets matching a rule go to TypeScript (event `punt`) before any table lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PuntRule {
    pub hook: Hook,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    /// Agent: the VIN range (network, prefix length). Outbound packets into it are held.
    pub vin_net: u32,
    pub vin_prefix: u8,
    /// Gateway: its global and private addresses.
    pub ggr: u32,
    pub pgr: u32,
    pub timeouts: Timeouts,
    pub punt: Vec<PuntRule>,
    /// Gateway: service ports whose connections pass through the ALG in TypeScript (FTP: 21).
    /// Every packet such a flow sends toward EN is punted with its flow id, before protection;
    /// its verdict may change the payload length (sequence numbers are then adjusted).
    pub alg_ports: Vec<u16>,
    pub max_held_per_flow: usize,
    pub max_held_total: usize,
    pub max_events: usize,
    /// ICMP "fragmentation needed" below this MTU is never taken (docs/pccom.md §8.1).
    pub pmtu_floor: u16,
}

/// The default floor for path MTUs learnt from ICMP: IPv6's minimum link MTU (RFC 8200 §5), which
/// no path of today's internet is below.
pub const PMTU_FLOOR: u16 = 1280;

impl Config {
    pub fn new(role: Role) -> Config {
        Config {
            role,
            vin_net: 0,
            vin_prefix: 32,
            ggr: 0,
            pgr: 0,
            timeouts: Timeouts::default(),
            punt: Vec::new(),
            alg_ports: Vec::new(),
            max_held_per_flow: 16,
            max_held_total: 1024,
            max_events: 65536,
            pmtu_floor: PMTU_FLOOR,
        }
    }

    /// Agent: is `a` a virtual address (VIN) this engine hands out?
    pub fn in_vin_net(&self, a: u32) -> bool {
        if self.vin_prefix == 0 {
            return true;
        }
        let mask = if self.vin_prefix >= 32 { u32::MAX } else { !(u32::MAX >> self.vin_prefix) };
        a & mask == self.vin_net & mask
    }
}
