//! One flow: its addresses (what the agent or the gateway knows about it), its PIT (the keys and
//! crypto state of both directions), its TCP connection (conn.rs) and its counters. A flow is shared between the
//! table (under the engine lock) and the crypto phase (under its own lock): see slab.rs.

use super::conn::Conn;
use super::table::FlowSpec;
use super::Role;
use crate::pccom::{Dir, Replay, SeqTrack};
use crate::pkt::{be16, PROTO_TCP, PROTO_UDP};
use crate::seqadj::SeqAdj;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    Reserved,
    Handshake,
    Established,
    Closing,
    /// TCP: both FINs acknowledged, or a RST: nothing from the internet passes any more.
    Closed,
    Udp,
}

impl FlowState {
    /// Every state as TypeScript names it.
    pub const NAMES: &'static [&'static str] = &["reserved", "handshake", "established", "closing", "closed", "udp"];

    pub fn as_str(&self) -> &'static str {
        Self::NAMES[*self as usize]
    }
}

/// How a flow's traffic ended, as far as the engine saw it (the gateway's audit line reports it):
/// a TCP FIN or RST (conn.rs records them where the connection's state moves; a RST after a FIN
/// counts as RST), or the latest packet from the internet failed verification.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    #[default]
    None,
    Fin,
    Rst,
    VerifyFailed,
}

impl Close {
    /// Every value as TypeScript names it.
    pub const NAMES: &'static [&'static str] = &["none", "fin", "rst", "verify-failed"];

    pub fn as_str(&self) -> &'static str {
        Self::NAMES[*self as usize]
    }
}

/// Whole packets and bytes as they left the engine (`out`: protected toward the internet; `in`:
/// verified toward the protected side), and the transport payload bytes they carried (what the
/// applications sent: no headers, no MAC; nothing for a segment that passed as its bare header).
#[derive(Debug, Default, Clone, Copy)]
pub struct FlowCounters {
    pub pkts_out: u64,
    pub bytes_out: u64,
    pub payload_out: u64,
    pub pkts_in: u64,
    pub bytes_in: u64,
    pub payload_in: u64,
    pub verify_failed: u64,
}

/// What a flow counts in place: `FlowCounters` but for `verify_failed`, which is kept with the
/// failures' details (allocated at the first failure: 8 bytes less in every flow).
/// `Flow::counters()` puts them together.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub pkts_out: u64,
    pub bytes_out: u64,
    pub payload_out: u64,
    pub pkts_in: u64,
    pub bytes_in: u64,
    pub payload_in: u64,
}

/// The transport payload length of a plaintext IPv4 TCP or UDP packet, from its header fields
/// alone (the packet is between verification and the final rewrite; its checksums may be stale).
pub fn payload_len(pkt: &[u8]) -> u64 {
    if pkt.len() < 20 {
        return 0;
    }
    let ihl = (pkt[0] & 0x0f) as usize * 4;
    let total = std::cmp::min(be16(pkt, 2) as usize, pkt.len());
    let l4 = match pkt[9] {
        PROTO_TCP if total >= ihl + 13 => (pkt[ihl + 12] >> 4) as usize * 4,
        PROTO_UDP => 8,
        _ => return 0,
    };
    total.saturating_sub(ihl + l4) as u64
}

/// The agent's side of a VAT entry: `{PEN:s <-> VIN:d} <=> {PEN:s <-> GGR:t}`.
pub struct AgentEnd {
    pub pen: u32,
    pub s: u16,
    pub vin: u32,
    pub ggr: u32,
    /// Probes, which only the agent sends (docs/pccom.md §6.1): when this engine last sent
    /// anything toward the internet on the flow (probes included; the NAT keepalive counts from
    /// it), when it last sent a probe, and the number of the last probe it sent. Here rather than
    /// in `Flow`: they fit beside the gateway's larger half, so they cost a gateway flow nothing.
    pub last_out: u64,
    pub last_probe: u64,
    pub probe_tx: u64,
}

/// Where the home router maps EN's PEN:s, as the gateway saw it on the binding packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub ghr: u32,
    pub m: u16,
}

/// How many sources may send a verified initial SYN for one reservation before it binds.
pub const MAX_CANDIDATES: usize = 4;

/// The gateway's side of a translation-table entry: `{GHR:m <-> GGR:t} <=> {PGR:t <-> PIN:d}`.
pub struct GatewayEnd {
    pub pin: u32,
    /// Allowed service ports d (empty = any).
    pub ports: Box<[u16]>,
    /// The home router's mapping, once committed (`is_bound`): `candidates[0]` (see `bound()`).
    is_bound: bool,
    /// TCP, until the binding commits: the sources whose initial SYN verified (a replayed SYN
    /// verifies too, so each is only a candidate). IN's answers go to every candidate. After:
    /// the binding in the first, none counted.
    pub candidates: [Binding; MAX_CANDIDATES],
    pub n_candidates: u8,
    /// A TCP flow whose d is one of `Config::alg_ports` (decided once, when d is learned): its segments go
    /// through the ALG in both directions.
    pub alg: bool,
    /// Length changes the ALG made to the IN -> EN stream (an ALG flow's, allocated at the first:
    /// 8 bytes where a `SeqAdj` took 16 in every flow).
    out_adj: Option<Box<SeqAdj>>,
}

impl GatewayEnd {
    /// The home router's mapping, once committed: UDP on the first verified datagram; TCP on the
    /// first verified segment newer than the SYN (only the real EN can make one). None before.
    /// (A flag and a Binding rather than an `Option<Binding>`: 8 bytes less in every flow.)
    pub fn bound(&self) -> Option<Binding> {
        if self.is_bound {
            Some(self.candidates[0])
        } else {
            None
        }
    }

    /// Commits (or, roaming, moves) the binding; the candidates are done with.
    pub fn bind(&mut self, b: Binding) {
        self.candidates[0] = b;
        self.n_candidates = 0;
        self.is_bound = true;
    }

    /// The ALG's length changes to the IN -> EN stream (none: the identity).
    pub fn adj(&self) -> SeqAdj {
        self.out_adj.as_deref().copied().unwrap_or_default()
    }

    pub fn adj_mut(&mut self) -> &mut SeqAdj {
        self.out_adj.get_or_insert_with(Box::default)
    }

    /// Restores the length changes (a snapshot's).
    pub fn set_adj(&mut self, a: SeqAdj) {
        self.out_adj = if a == SeqAdj::default() { None } else { Some(Box::new(a)) };
    }
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
    /// IN's service port (the gateway learns it from the first packet that verifies).
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
    /// UDP: the replay window of received counters (TCP flows have none: conn.rs's rules).
    pub replay: Option<Box<Replay>>,
    pub state: FlowState,
    /// TCP: the one connection this flow carries.
    pub conn: Conn,
    /// The last packet of the flow's own traffic, either way (probes do not count: a flow the
    /// application left expires as if none had been sent).
    pub last: u64,
    /// Probes (docs/pccom.md §6.1): the highest probe number it accepted (the sending side's
    /// state is in AgentEnd).
    pub probe_rx: u64,
    pub c: Traffic,
    /// The latest packet from the internet failed verification (cleared by one that verifies).
    pub last_in_failed: bool,
    /// TCP: the MSS the local stack was told by the remote end's SYN (0 = none seen) and the path
    /// MTU an ICMP "fragmentation needed" told it (0 = none): the segment size of its GSO
    /// super-packets (gso.rs).
    pub seg_mss: u16,
    pub seg_mtu: u16,
    /// Allocated at the first failure (most flows never have one).
    vfail: Option<Box<VerifyFailures>>,
}

/// Verification failures not yet reported (events are rate-limited to one per flow per second;
/// the sweep reports what is still pending after a second, so a trailing burst is never lost).
#[derive(Debug, Default, Clone, Copy)]
struct VerifyFailures {
    /// Every failure so far (FlowCounters::verify_failed).
    total: u64,
    pending: u64,
    last_event: u64,
    /// The latest failure: reason, source and ports.
    reason: &'static str,
    src: u32,
    sport: u16,
    dport: u16,
}

/// A verify-failed event that is due: flow id, reason, source, ports and the failures it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    pub id: u32,
    pub reason: &'static str,
    pub src: u32,
    pub sport: u16,
    pub dport: u16,
    pub count: u64,
}

impl Flow {
    pub fn new(spec: &FlowSpec, role: Role, now: u64) -> Result<Flow, String> {
        let (end, state) = match role {
            Role::Agent => (
                End::Agent(AgentEnd { pen: spec.pen, s: spec.s, vin: spec.vin, ggr: spec.ggr, last_out: now, last_probe: 0, probe_tx: 0 }),
                if spec.proto == PROTO_UDP { FlowState::Udp } else { FlowState::Handshake },
            ),
            Role::Gateway => (
                End::Gateway(GatewayEnd {
                    pin: spec.pin,
                    ports: spec.ports.clone().into_boxed_slice(),
                    is_bound: false,
                    candidates: [Binding::default(); MAX_CANDIDATES],
                    n_candidates: 0,
                    alg: false,
                    out_adj: None,
                }),
                FlowState::Reserved,
            ),
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
            replay: if spec.proto == PROTO_UDP { Some(Box::default()) } else { None },
            state,
            conn: Conn::default(),
            last: now,
            probe_rx: 0,
            c: Traffic::default(),
            last_in_failed: false,
            seg_mss: 0,
            seg_mtu: 0,
            vfail: None,
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
        self.gateway().and_then(|g| g.bound())
    }

    /// An agent flow is bound from the start; a gateway reservation once its first packet verified.
    pub fn is_bound(&self) -> bool {
        match &self.end {
            End::Agent(_) => true,
            End::Gateway(g) => g.bound().is_some(),
        }
    }

    /// How the flow's traffic ended so far: RST or FIN if the connection saw one, else
    /// verification failures if the latest packet from the internet failed, else none.
    pub fn close_signal(&self) -> Close {
        if self.conn.rst_seen() {
            Close::Rst
        } else if self.conn.fin_seen() {
            Close::Fin
        } else if self.last_in_failed {
            Close::VerifyFailed
        } else {
            Close::None
        }
    }

    /// The flow's counters, as TypeScript reads them.
    pub fn counters(&self) -> FlowCounters {
        let c = self.c;
        let verify_failed = self.vfail.as_ref().map_or(0, |v| v.total);
        FlowCounters { pkts_out: c.pkts_out, bytes_out: c.bytes_out, payload_out: c.payload_out, pkts_in: c.pkts_in, bytes_in: c.bytes_in, payload_in: c.payload_in, verify_failed }
    }

    /// Counts a packet that failed verification; returns the event that is due, if one is (rate
    /// limit: one per flow per second).
    pub fn count_verify_failure(&mut self, reason: &'static str, src: u32, sport: u16, dport: u16, now: u64) -> Option<VerifyReport> {
        self.last_in_failed = true;
        let v = self.vfail.get_or_insert_with(Box::default);
        v.total += 1;
        v.pending += 1;
        v.reason = reason;
        v.src = src;
        v.sport = sport;
        v.dport = dport;
        self.verify_report_due(now)
    }

    /// The pending failures as an event, if a second passed since the last one (the sweep calls
    /// this, so failures are reported even when no later failure comes).
    pub fn verify_report_due(&mut self, now: u64) -> Option<VerifyReport> {
        let v = self.vfail.as_deref_mut()?;
        if v.pending == 0 || (v.last_event != 0 && now.saturating_sub(v.last_event) < 1000) {
            return None;
        }
        let r = VerifyReport { id: self.id, reason: v.reason, src: v.src, sport: v.sport, dport: v.dport, count: v.pending };
        v.pending = 0;
        v.last_event = now.max(1);
        Some(r)
    }

    /// Gateway, before the binding commits: is `b` one of the candidates?
    pub fn is_candidate(&self, b: Binding) -> bool {
        self.gateway().map_or(false, |g| g.candidates[..g.n_candidates as usize].contains(&b))
    }

    /// Where packets toward EN go: the committed binding, or (gateway, TCP, before it commits)
    /// every candidate. None: nowhere yet.
    pub fn destinations(&self) -> Option<(Binding, &[Binding])> {
        match &self.end {
            End::Agent(_) => None,
            End::Gateway(g) => match g.bound() {
                Some(b) => Some((b, &[])),
                None if g.n_candidates > 0 => Some((g.candidates[0], &g.candidates[1..g.n_candidates as usize])),
                None => None,
            },
        }
    }
}
