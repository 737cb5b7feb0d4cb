//! One flow: its addresses (what the agent or the gateway knows about it), its PIT (the keys and
//! crypto state of both directions), its TCP state and its counters. A flow is shared between the
//! table (under the engine lock) and the crypto phase (under its own lock): see `FlowRef`.

use super::table::FlowSpec;
use super::Role;
use crate::pccom::{Dir, Replay, SeqTrack};
use crate::pkt::{PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::seqadj::SeqAdj;
use std::sync::{Arc, Mutex};

/// A flow shared between the tables (engine lock) and the crypto phase (its own lock).
pub type FlowRef = Arc<Mutex<Flow>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    Reserved,
    Handshake,
    Established,
    Closing,
    Udp,
}

impl FlowState {
    /// Every state as TypeScript names it.
    pub const NAMES: &'static [&'static str] = &["reserved", "handshake", "established", "closing", "udp"];

    pub fn as_str(&self) -> &'static str {
        Self::NAMES[*self as usize]
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FlowCounters {
    pub pkts_out: u64,
    pub bytes_out: u64,
    pub pkts_in: u64,
    pub bytes_in: u64,
    pub verify_failed: u64,
}

/// The agent's side of a VAT entry: `{PEN:s <-> VIN:d} <=> {PEN:s <-> GGR:t}`.
pub struct AgentEnd {
    pub pen: u32,
    pub s: u16,
    pub vin: u32,
    pub ggr: u32,
    /// The ISN of the connection this TCP flow protects: a new connection on the same 5-tuple
    /// must not reuse the flow's keys and positions.
    pub isn_out: Option<u32>,
}

/// Where the home router maps EN's PEN:s, as the gateway saw it on the binding packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub ghr: u32,
    pub m: u16,
}

/// The gateway's side of a translation-table entry: `{GHR:m <-> GGR:t} <=> {PGR:t <-> PIN:d}`.
pub struct GatewayEnd {
    pub pin: u32,
    /// Allowed service ports d (empty = any).
    pub ports: Vec<u16>,
    /// None until the first packet to GGR:t verifies (the reservation binds in-band).
    pub bound: Option<Binding>,
    /// A TCP flow bound to one of `Config::alg_ports` (decided once, at binding): its segments go
    /// through the ALG in both directions.
    pub alg: bool,
    /// Length changes the ALG made to the IN -> EN stream.
    pub out_adj: SeqAdj,
}

/// What only one role knows about a flow.
pub enum End {
    Agent(AgentEnd),
    Gateway(GatewayEnd),
}

pub struct Flow {
    pub id: u32,
    pub proto: u8,
    pub compat: bool,
    /// IN's service port (the gateway learns it at binding).
    pub d: u16,
    /// The port the gateway reserved.
    pub t: u16,
    pub end: End,
    // The PIT: keys and crypto state, per direction (tx = protect, rx = verify).
    pub tx: Dir,
    pub rx: Dir,
    pub txseq: SeqTrack,
    pub rxseq: SeqTrack,
    pub udp_ctr: u64,
    pub replay: Replay,
    pub state: FlowState,
    syn_out: bool,
    syn_in: bool,
    pub last: u64,
    pub c: FlowCounters,
    vfail_pending: u64,
    vfail_last: u64,
}

impl Flow {
    pub fn new(spec: &FlowSpec, role: Role, now: u64) -> Result<Flow, String> {
        let (end, state) = match role {
            Role::Agent => (
                End::Agent(AgentEnd { pen: spec.pen, s: spec.s, vin: spec.vin, ggr: spec.ggr, isn_out: None }),
                if spec.proto == PROTO_UDP { FlowState::Udp } else { FlowState::Handshake },
            ),
            Role::Gateway => (End::Gateway(GatewayEnd { pin: spec.pin, ports: spec.ports.clone(), bound: None, alg: false, out_adj: SeqAdj::default() }), FlowState::Reserved),
        };
        Ok(Flow {
            id: spec.id,
            proto: spec.proto,
            compat: spec.compat,
            d: spec.d,
            t: spec.t,
            end,
            tx: Dir::new(&spec.tx)?,
            rx: Dir::new(&spec.rx)?,
            txseq: SeqTrack::default(),
            rxseq: SeqTrack::default(),
            udp_ctr: 0,
            replay: Replay::default(),
            state,
            syn_out: false,
            syn_in: false,
            last: now,
            c: FlowCounters::default(),
            vfail_pending: 0,
            vfail_last: 0,
        })
    }

    pub fn agent(&self) -> Option<&AgentEnd> {
        match &self.end {
            End::Agent(a) => Some(a),
            End::Gateway(_) => None,
        }
    }

    pub fn gateway(&self) -> Option<&GatewayEnd> {
        match &self.end {
            End::Gateway(g) => Some(g),
            End::Agent(_) => None,
        }
    }

    /// Where the home router maps EN for this flow: always known to the agent's flows (None
    /// there), known to a gateway reservation once it bound.
    pub fn binding(&self) -> Option<Binding> {
        self.gateway().and_then(|g| g.bound)
    }

    /// An agent flow is bound from the start; a gateway reservation once its first packet verified.
    pub fn is_bound(&self) -> bool {
        match &self.end {
            End::Agent(_) => true,
            End::Gateway(g) => g.bound.is_some(),
        }
    }

    /// The TCP state machine, fed with the flags of each segment the flow protected (`outbound`)
    /// or verified.
    pub fn track_tcp(&mut self, flags: u8, outbound: bool) {
        if flags & TCP_SYN != 0 {
            if outbound {
                self.syn_out = true;
            } else {
                self.syn_in = true;
            }
            if self.state == FlowState::Reserved || self.state == FlowState::Closing {
                self.state = FlowState::Handshake;
            }
        }
        if flags & (TCP_FIN | TCP_RST) != 0 {
            self.state = FlowState::Closing;
        } else if self.state == FlowState::Handshake && self.syn_out && self.syn_in && flags & TCP_SYN == 0 && flags & TCP_ACK != 0 {
            self.state = FlowState::Established;
        }
    }

    /// Counts a packet that failed verification; returns (flow id, failures since the last
    /// event) when an event is due (rate limit: one per flow per second).
    pub fn count_verify_failure(&mut self, now: u64) -> Option<(u32, u64)> {
        self.c.verify_failed += 1;
        self.vfail_pending += 1;
        if self.vfail_last == 0 || now.saturating_sub(self.vfail_last) >= 1000 {
            let n = self.vfail_pending;
            self.vfail_pending = 0;
            self.vfail_last = now.max(1);
            return Some((self.id, n));
        }
        None
    }
}
