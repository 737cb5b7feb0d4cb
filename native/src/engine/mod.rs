//! The packet engine: translation tables with their PIT, PCCOM protection, held packets, punts,
//! ICMP, expiry and events. Backend-independent: packets come in as byte vectors with an opaque
//! [`Handle`]; results go out as a [`Verdict`] or, for packets decided later, through the outbox.
//!
//! One packet, in reading order:
//! - `protect.rs`: a packet leaving the protected side (an application on EN at the agent, IN on
//!   the office LAN at the gateway; hook `out`) is looked up, encrypted, MACed and rewritten for
//!   the internet.
//! - `unprotect.rs`: a packet from the internet (hook `in`) is looked up, verified, decrypted and
//!   rewritten for the protected side; a gateway reservation binds here.
//!
//! Around them: `table.rs` (the flow table's indexes), `slab.rs` (where the flows live),
//! `id_index.rs` (flows by id), `flow.rs` (one flow and its PIT), `conn.rs` (the TCP connection a
//! flow carries and its replay rules), `drops.rs` (why a packet was refused), `held.rs` (packets
//! waiting for a negotiation), `pool.rs` (pooled ports the agent takes for a new flow itself),
//! `punt.rs` (packets handed to TypeScript: punt rules and the ALG),
//! `icmp.rs` (ICMP errors that quote a flow), `expiry.rs` (timeouts), `snapshot.rs` (what a
//! restart carries), `events.rs` and `stats.rs` (what TypeScript hears), `synth.rs` (the RST /
//! ICMP the engine answers with), `config.rs`.
//!
//! Locking: `classify` (table work) and `finish` (counters, events) run under the engine lock; the
//! crypto phase between them (`CryptoJob::run`) under the flow's own lock only, so backend threads
//! working on different flows encrypt in parallel. A flow removed between the two phases is not
//! there for the crypto phase (its slot's generation moved, slab.rs): the packet is refused (no-flow).

mod config;
mod conn;
mod drops;
mod events;
mod expiry;
mod flow;
mod held;
mod icmp;
mod id_index;
mod pool;
mod protect;
mod probe;
mod punt;
mod slab;
mod snapshot;
mod stats;
mod synth;
mod table;
mod unprotect;

pub use config::{Config, PuntRule, Role, Timeouts};
pub use conn::Conn;
pub use drops::{Drops, Reason};
pub use events::Event;
pub use flow::{Binding, Close, FlowCounters, FlowState, MAX_CANDIDATES};
pub use held::FailMode;
pub use pool::{PoolPort, FIRST_ID as POOL_FIRST_ID};
pub use punt::ALG_MAX_GROWTH;
pub use snapshot::SNAPSHOT_FORMAT;
pub use stats::Stats;
pub use synth::{synth_icmp_unreach, synth_rst};
pub use table::{FlowInfo, FlowSpec};

use crate::pkt::*;
use flow::VerifyReport;
use slab::FlowRef;

/// Where a packet was taken: `Out` = from the local side (applications on EN, the LAN at the
/// gateway) toward the internet; `In` = from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Out,
    In,
}

impl Hook {
    pub fn as_str(&self) -> &'static str {
        match self {
            Hook::Out => "out",
            Hook::In => "in",
        }
    }
}

/// Identifies a packet to its source so a later verdict can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    /// Given by a caller in memory (`process`); later results go to the host's released list.
    Memory,
    /// Held by a backend until its verdict: the backend's queue and its id for the packet.
    Queued { queue: u16, id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly rewritten) packet.
    Accept,
    Drop(Reason),
    Held,
    Punted(u64),
}

/// A verdict or injected packet for a backend to carry out later.
pub struct OutItem {
    pub handle: Handle,
    pub hook: Hook,
    /// None = drop; Some(bytes) = accept with these bytes.
    pub bytes: Option<Vec<u8>>,
    /// True for packets synthesised by the engine (RST / ICMP) that have no queue entry.
    pub injected: bool,
}

/// `(proto, src, sport, dst, dport)`.
pub type Key5 = (u8, u32, u16, u32, u16);

/// Result of `Engine::classify`.
pub enum Step {
    Done(Verdict),
    Crypto(CryptoJob),
}

/// Extra destinations for a packet toward EN: a gateway reservation whose binding has not
/// committed sends IN's answers to every candidate (flow.rs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Copies {
    pub to: [Binding; MAX_CANDIDATES - 1],
    pub n: usize,
}

/// What the crypto phase reports back to `Engine::finish`.
pub enum Outcome {
    /// `alg`: the flow id of a gateway ALG flow (its inbound packets go to the ALG). `learned`: the
    /// service port d a gateway flow just learned (from its first verified packet). `bare`: only
    /// the segment's bare header passed (Reason::OldData is counted).
    /// `roamed`: the binding moved to this packet's source (docs/pccom.md §6.1).
    Accepted { bound: Option<Event>, alg: Option<u32>, learned: Option<u16>, copies: Copies, bare: bool, roamed: bool },
    /// A verified probe, consumed (§6.1); `bound` is set when it moved the binding.
    Probe { bound: Option<Event> },
    /// `report`: a verify-failed event that is due for the flow (1/s per flow).
    Refused { reason: Reason, report: Option<VerifyReport> },
}

/// The crypto half of a packet: runs with only the flow's lock held.
pub struct CryptoJob {
    flow: FlowRef,
    pub ip: Ip,
    /// true = protect (outbound), false = unprotect (inbound).
    pub protect: bool,
    ggr: u32,
    pgr: u32,
    now: u64,
    /// The packet's handle (an ALG flow's inbound packet is punted with it).
    handle: Handle,
}

impl CryptoJob {
    pub fn run(&self, pkt: &mut Vec<u8>) -> Outcome {
        // The flow was removed after the lookup (slab.rs): nothing of it may be used.
        let mut f = match self.flow.lock() {
            Some(f) => f,
            None => return Outcome::Refused { reason: Reason::NoFlow, report: None },
        };
        if self.protect {
            protect::protect(&mut f, pkt, &self.ip, self.ggr, self.now)
        } else {
            unprotect::unprotect(&mut f, pkt, &self.ip, self.pgr, self.now)
        }
    }
}

pub struct Engine {
    pub cfg: Config,
    table: table::Table,
    held: held::Held,
    pools: pool::Pools,
    punts: punt::Punts,
    pub events: Vec<Event>,
    pub outbox: Vec<OutItem>,
    pub stats: Stats,
    sweep: expiry::Sweep,
    scratch: Vec<u8>,
}

impl Engine {
    pub fn new(cfg: Config) -> Engine {
        Engine {
            cfg,
            table: table::Table::default(),
            held: held::Held::default(),
            pools: pool::Pools::default(),
            punts: punt::Punts::default(),
            events: Vec::new(),
            outbox: Vec::new(),
            stats: Stats::default(),
            sweep: expiry::Sweep::default(),
            scratch: Vec::with_capacity(65536 + 128),
        }
    }

    /// Processes one packet in place. On `Accept` the buffer holds the packet to pass on.
    /// (Single-threaded form of classify -> CryptoJob::run -> finish.)
    pub fn process(&mut self, pkt: &mut Vec<u8>, hook: Hook, handle: Handle, now: u64) -> Verdict {
        match self.classify(pkt, hook, handle, now) {
            Step::Done(v) => v,
            Step::Crypto(job) => {
                let o = job.run(pkt);
                self.finish(&job, o, pkt)
            }
        }
    }

    /// First phase, under the engine lock: parse, look up, hold/punt/ICMP. Returns either a
    /// verdict or a crypto job to run under the flow's own lock only.
    pub fn classify(&mut self, pkt: &mut Vec<u8>, hook: Hook, handle: Handle, now: u64) -> Step {
        self.stats.packets += 1;
        let s = self.classify_inner(pkt, hook, handle, now);
        if let Step::Done(Verdict::Drop(r)) = s {
            self.stats.count_drop(r);
        }
        s
    }

    fn classify_inner(&mut self, pkt: &mut Vec<u8>, hook: Hook, handle: Handle, now: u64) -> Step {
        let ip = match parse_ip(pkt, false) {
            Ok(ip) => ip,
            Err(_) => return self.malformed(),
        };
        if is_fragment(pkt) {
            self.stats.fragments += 1;
            return Step::Done(Verdict::Drop(Reason::Fragment));
        }
        // Bytes after the IP total length (link padding) are not part of the packet.
        pkt.truncate(ip.total);
        // Punt rules come first (e.g. DNS answers to TypeScript).
        if self.punt_rule_matches(pkt, &ip, hook) {
            return Step::Done(self.punt(pkt, hook, None, handle, now));
        }
        let ports = match ip.proto {
            PROTO_TCP => parse_tcp(pkt, &ip).map(|t| (t.sport, t.dport)),
            PROTO_UDP => parse_udp(pkt, &ip).map(|u| (u.sport, u.dport)),
            PROTO_ICMP => return Step::Done(self.icmp(pkt, &ip, hook)),
            _ => return self.malformed(),
        };
        let (sport, dport) = match ports {
            Ok(p) => p,
            Err(_) => return self.malformed(),
        };
        match hook {
            Hook::Out => self.classify_protect(pkt, &ip, sport, dport, handle, now),
            Hook::In => self.classify_unprotect(&ip, sport, dport, handle, now),
        }
    }

    fn malformed(&mut self) -> Step {
        self.stats.malformed += 1;
        Step::Done(Verdict::Drop(Reason::Malformed))
    }

    fn no_flow(&mut self) -> Step {
        self.stats.no_flow += 1;
        Step::Done(Verdict::Drop(Reason::NoFlow))
    }

    fn job(&self, flow: FlowRef, ip: &Ip, protect: bool, handle: Handle, now: u64) -> CryptoJob {
        CryptoJob { flow, ip: *ip, protect, ggr: self.cfg.ggr, pgr: self.cfg.pgr, now, handle }
    }

    /// Last phase, under the engine lock: counters and events for a finished crypto job. `pkt`
    /// is the packet as the job left it (an ALG flow's inbound packet is punted from here).
    pub fn finish(&mut self, job: &CryptoJob, o: Outcome, pkt: &[u8]) -> Verdict {
        let v = match o {
            Outcome::Probe { bound } => {
                self.stats.probes_received += 1;
                if let Some(e) = bound {
                    self.stats.roamed += 1;
                    self.event(e);
                }
                return Verdict::Drop(Reason::Probe);
            }
            Outcome::Accepted { bound, alg, learned, copies, bare, roamed } => {
                if roamed {
                    self.stats.roamed += 1;
                }
                if job.protect {
                    self.stats.translated_out += 1;
                } else {
                    self.stats.translated_in += 1;
                }
                if bare {
                    self.stats.drops.add(Reason::OldData, 1);
                }
                if let Some(d) = learned {
                    // Whether the flow goes through the ALG is decided once, with d.
                    if job.ip.proto == PROTO_TCP && self.cfg.alg_ports.contains(&d) {
                        punt::mark_alg(&job.flow);
                    }
                }
                if let Some(e) = bound {
                    self.stats.bound += 1;
                    self.event(e);
                }
                for b in &copies.to[..copies.n] {
                    // Before a binding commits, IN's answer goes to every candidate: the same
                    // protected bytes, another destination (addresses and ports are not in the MAC).
                    let mut c = pkt.to_vec();
                    if let Ok(ip) = parse_ip(&c, false) {
                        let (src, sport) = (ip.src, be16(&c, ip.ihl));
                        rewrite(&mut c, ip.ihl, ip.proto, src, sport, b.ghr, b.m);
                        self.outbox.push(OutItem { handle: Handle::Memory, hook: Hook::Out, bytes: Some(c), injected: true });
                    }
                }
                match alg {
                    // EN -> IN on an ALG flow: verified and translated, now to the ALG.
                    Some(fid) if !job.protect => self.punt(pkt, Hook::In, Some(fid), job.handle, job.now),
                    _ => Verdict::Accept,
                }
            }
            Outcome::Refused { reason, report } => {
                match reason {
                    Reason::Malformed => self.stats.malformed += 1,
                    Reason::NoRoom => self.stats.no_room += 1,
                    Reason::Crypto | Reason::KeyExhausted => self.stats.crypto_errors += 1,
                    Reason::PortDenied => self.stats.port_denied += 1,
                    Reason::BadMac | Reason::NoMac | Reason::PortMismatch => self.stats.verify_failed += 1,
                    Reason::Replay => {
                        self.stats.verify_failed += 1;
                        self.stats.replay += 1;
                    }
                    Reason::WrongSource => {
                        self.stats.verify_failed += 1;
                        self.stats.wrong_source += 1;
                    }
                    _ => {}
                }
                if let Some(r) = report {
                    self.event(Event::VerifyFailed { id: Some(r.id), proto: job.ip.proto, src: r.src, sport: r.sport, dport: r.dport, reason: r.reason, count: r.count });
                }
                Verdict::Drop(reason)
            }
        };
        if let Verdict::Drop(r) = v {
            self.stats.count_drop(r);
        }
        v
    }

    /// In-memory helper without allocation: processes a copy in the scratch buffer; Ok(len) if
    /// accepted and it fits in `cap` bytes (read it with `scratch_bytes`), else Err(verdict)
    /// (Err(Accept) = accepted but larger than `cap`).
    pub fn process_into(&mut self, input: &[u8], hook: Hook, now: u64, cap: usize) -> Result<usize, Verdict> {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        s.extend_from_slice(input);
        let v = self.process(&mut s, hook, Handle::Memory, now);
        let n = s.len();
        self.scratch = s;
        match v {
            Verdict::Accept if n <= cap => Ok(n),
            other => Err(other),
        }
    }

    pub fn scratch_bytes(&self, n: usize) -> &[u8] {
        &self.scratch[..std::cmp::min(n, self.scratch.len())]
    }

    /// In-memory helper: copy-in, process, copy-out, using the engine's scratch buffer.
    pub fn process_copy(&mut self, input: &[u8], hook: Hook, now: u64) -> (Verdict, Vec<u8>) {
        match self.process_into(input, hook, now, usize::MAX) {
            Ok(n) => (Verdict::Accept, self.scratch[..n].to_vec()),
            Err(v) => (v, Vec::new()),
        }
    }
}
