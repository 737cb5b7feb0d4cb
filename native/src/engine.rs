//! Translation tables (agent VAT table, gateway translation table, each with its PIT),
//! held packets, punts, events and expiry. Backend-independent: packets come in as byte
//! vectors with an opaque handle, and results go out as verdicts or through the outbox.

use crate::pccom::{self, Dir, DirKeys, PErr, Replay, SeqTrack, VErr};
use crate::pkt::*;
use crate::seqadj::SeqAdj;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Gateway,
}

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

/// Identifies a packet to its backend so a later verdict can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    Memory,
    Nfq { queue: u16, id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly rewritten) packet.
    Accept,
    Drop(&'static str),
    Held,
    Punted(u64),
}

#[derive(Debug, Clone)]
pub enum Event {
    Held { proto: u8, src: u32, sport: u16, dst: u32, dport: u16 },
    Bound { id: u32, proto: u8, t: u16, ghr: u32, m: u16, pin: u32, d: u16 },
    Expired { id: u32, proto: u8, t: u16, state: &'static str },
    VerifyFailed { id: Option<u32>, proto: u8, src: u32, sport: u16, dport: u16, reason: &'static str, count: u64 },
    /// `flow`: the flow an ALG punt belongs to (gateway FTP control); None for rule punts.
    Punt { id: u64, hook: Hook, flow: Option<u32>, bytes: Vec<u8> },
    HeldExpired { proto: u8, src: u32, sport: u16, dst: u32, dport: u16, count: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Reset,
    PortUnreachable,
    AdminProhibited,
    Silent,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub tcp_handshake: u64,
    pub tcp_established: u64,
    pub tcp_closing: u64,
    pub udp_idle: u64,
    pub reservation: u64,
    pub held: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { tcp_handshake: 30_000, tcp_established: 7_200_000, tcp_closing: 120_000, udp_idle: 180_000, reservation: 30_000, held: 10_000 }
    }
}

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
}

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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    Reserved,
    Handshake,
    Established,
    Closing,
    Udp,
}

impl FlowState {
    pub fn as_str(&self) -> &'static str {
        match self {
            FlowState::Reserved => "reserved",
            FlowState::Handshake => "handshake",
            FlowState::Established => "established",
            FlowState::Closing => "closing",
            FlowState::Udp => "udp",
        }
    }
}

/// A snapshot of one flow (see `Engine::flow`).
#[derive(Debug, Clone, Copy)]
pub struct FlowInfo {
    pub id: u32,
    pub proto: u8,
    pub state: FlowState,
    pub bound: bool,
    pub t: u16,
    pub d: u16,
    pub ghr: u32,
    pub m: u16,
    pub c: FlowCounters,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FlowCounters {
    pub pkts_out: u64,
    pub bytes_out: u64,
    pub pkts_in: u64,
    pub bytes_in: u64,
    pub verify_failed: u64,
}

/// What TypeScript hands over for a flow (agent VAT entry, or gateway reservation).
#[derive(Clone)]
pub struct FlowSpec {
    pub id: u32,
    pub proto: u8,
    pub compat: bool,
    pub tx: DirKeys,
    pub rx: DirKeys,
    /// Agent: PEN, s, VIN, d, GGR, t.
    pub pen: u32,
    pub s: u16,
    pub vin: u32,
    pub d: u16,
    pub ggr: u32,
    pub t: u16,
    /// Gateway reservation: PIN and the allowed service ports (empty = any).
    pub pin: u32,
    pub ports: Vec<u16>,
}

pub struct Flow {
    pub spec_id: u32,
    pub proto: u8,
    pub compat: bool,
    pub pen: u32,
    pub s: u16,
    pub vin: u32,
    pub d: u16,
    pub ggr: u32,
    pub t: u16,
    pub pin: u32,
    pub ports: Vec<u16>,
    pub ghr: u32,
    pub m: u16,
    pub bound: bool,
    /// The ISN of the connection this TCP flow protects (agent): a new connection on the same
    /// 5-tuple must not reuse the flow's keys and positions.
    isn_out: Option<u32>,
    tx: Dir,
    rx: Dir,
    txseq: SeqTrack,
    rxseq: SeqTrack,
    /// Gateway: a TCP flow bound to one of `Config::alg_ports` (decided once, at binding): its
    /// segments go through the ALG in both directions.
    alg: bool,
    /// Gateway: length changes the ALG made to the IN -> EN stream.
    out_adj: SeqAdj,
    udp_ctr: u64,
    replay: Replay,
    pub state: FlowState,
    syn_out: bool,
    syn_in: bool,
    pub created: u64,
    pub last: u64,
    pub c: FlowCounters,
    vfail_pending: u64,
    vfail_last: u64,
}

type Key5 = (u8, u32, u16, u32, u16);

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub packets: u64,
    pub translated_out: u64,
    pub translated_in: u64,
    pub accepted_plain: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub fragments: u64,
    pub no_flow: u64,
    pub verify_failed: u64,
    pub replay: u64,
    pub wrong_source: u64,
    pub port_denied: u64,
    pub no_room: u64,
    pub crypto_errors: u64,
    pub held: u64,
    pub held_released: u64,
    pub held_failed: u64,
    pub held_overflow: u64,
    pub held_expired: u64,
    pub punted: u64,
    pub punt_expired: u64,
    pub icmp_translated: u64,
    pub bound: u64,
    pub expired: u64,
    pub events_dropped: u64,
    pub panics: u64,
}

struct HeldQ {
    pkts: VecDeque<(Vec<u8>, Handle)>,
    since: u64,
}

struct Punted {
    bytes: Vec<u8>,
    /// ALG punts: the flow id (its packets continue into translation after the verdict).
    flow: Option<u32>,
    handle: Handle,
    hook: Hook,
    since: u64,
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

pub struct Engine {
    pub cfg: Config,
    slots: Vec<Option<FlowRef>>,
    free: Vec<usize>,
    by_id: HashMap<u32, usize>,
    out_idx: HashMap<Key5, usize>,
    in_idx: HashMap<Key5, usize>,
    port_idx: HashMap<(u8, u16), usize>,
    held: HashMap<Key5, HeldQ>,
    held_total: usize,
    punts: HashMap<u64, Punted>,
    next_punt: u64,
    pub events: Vec<Event>,
    pub outbox: Vec<OutItem>,
    pub stats: Stats,
    sweep_pos: usize,
    last_sweep: u64,
    scratch: Vec<u8>,
}

fn in_net(a: u32, net: u32, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = if prefix >= 32 { u32::MAX } else { !(u32::MAX >> prefix) };
    a & mask == net & mask
}

impl Engine {
    pub fn new(cfg: Config) -> Engine {
        Engine {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            out_idx: HashMap::new(),
            in_idx: HashMap::new(),
            port_idx: HashMap::new(),
            held: HashMap::new(),
            held_total: 0,
            punts: HashMap::new(),
            next_punt: 1,
            events: Vec::new(),
            outbox: Vec::new(),
            stats: Stats::default(),
            sweep_pos: 0,
            last_sweep: 0,
            scratch: Vec::with_capacity(65536 + 128),
        }
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= self.cfg.max_events {
            self.stats.events_dropped += 1;
        } else {
            self.events.push(e);
        }
    }

    pub fn flow_count(&self) -> usize {
        self.by_id.len()
    }

    pub fn held_count(&self) -> usize {
        self.held_total
    }

    // -----------------------------------------------------------------------------------------
    // Table management (called from TypeScript through N-API).

    /// Agent: adds a VAT entry with its PIT and releases any packets held for it.
    /// Gateway: adds a reservation for port t.
    pub fn add_flow(&mut self, spec: &FlowSpec, now: u64) -> Result<(), String> {
        if spec.proto != PROTO_TCP && spec.proto != PROTO_UDP {
            return Err("proto must be tcp or udp".into());
        }
        if self.by_id.contains_key(&spec.id) {
            return Err(format!("flow id {} exists", spec.id));
        }
        let (k_out, k_in) = ((spec.proto, spec.pen, spec.s, spec.vin, spec.d), (spec.proto, spec.ggr, spec.t, spec.pen, spec.s));
        match self.cfg.role {
            Role::Agent => {
                if self.out_idx.contains_key(&k_out) || self.in_idx.contains_key(&k_in) {
                    return Err("a flow with the same addresses and ports exists".into());
                }
            }
            Role::Gateway => {
                if self.port_idx.contains_key(&(spec.proto, spec.t)) {
                    return Err(format!("port {} is already reserved", spec.t));
                }
            }
        }
        let flow = Flow {
            spec_id: spec.id,
            proto: spec.proto,
            compat: spec.compat,
            pen: spec.pen,
            s: spec.s,
            vin: spec.vin,
            d: spec.d,
            ggr: spec.ggr,
            t: spec.t,
            pin: spec.pin,
            ports: spec.ports.clone(),
            ghr: 0,
            m: 0,
            bound: self.cfg.role == Role::Agent,
            isn_out: None,
            tx: Dir::new(&spec.tx)?,
            rx: Dir::new(&spec.rx)?,
            txseq: SeqTrack::default(),
            rxseq: SeqTrack::default(),
            alg: false,
            out_adj: SeqAdj::default(),
            udp_ctr: 0,
            replay: Replay::default(),
            state: if self.cfg.role == Role::Gateway {
                FlowState::Reserved
            } else if spec.proto == PROTO_UDP {
                FlowState::Udp
            } else {
                FlowState::Handshake
            },
            syn_out: false,
            syn_in: false,
            created: now,
            last: now,
            c: FlowCounters::default(),
            vfail_pending: 0,
            vfail_last: 0,
        };
        let flow = Arc::new(Mutex::new(flow));
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(flow);
                s
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(spec.id, slot);
        match self.cfg.role {
            Role::Agent => {
                self.out_idx.insert(k_out, slot);
                self.in_idx.insert(k_in, slot);
                if let Some(q) = self.held.remove(&k_out) {
                    self.held_total -= q.pkts.len();
                    for (mut p, h) in q.pkts {
                        let v = self.process(&mut p, Hook::Out, h, now);
                        self.stats.held_released += 1;
                        self.outbox.push(OutItem { handle: h, hook: Hook::Out, bytes: if v == Verdict::Accept { Some(p) } else { None }, injected: false });
                    }
                }
            }
            Role::Gateway => {
                self.port_idx.insert((spec.proto, spec.t), slot);
            }
        }
        Ok(())
    }

    /// Replaces a flow's keys (rekey) and/or the compat flag. Sequence tracking is kept.
    pub fn update_flow(&mut self, id: u32, tx: Option<&DirKeys>, rx: Option<&DirKeys>) -> Result<bool, String> {
        let slot = match self.by_id.get(&id) {
            Some(s) => *s,
            None => return Ok(false),
        };
        let fr = self.slots[slot].as_ref().ok_or("internal: empty slot")?;
        let mut f = flock(fr);
        if let Some(k) = tx {
            f.tx = Dir::new(k)?;
            f.udp_ctr = 0;
        }
        if let Some(k) = rx {
            f.rx = Dir::new(k)?;
            f.replay = Replay::default();
        }
        Ok(true)
    }

    pub fn remove_flow(&mut self, id: u32) -> bool {
        let slot = match self.by_id.remove(&id) {
            Some(s) => s,
            None => return false,
        };
        if let Some(fr) = self.slots[slot].take() {
            let f = flock(&fr);
            self.out_idx.remove(&(f.proto, f.pen, f.s, f.vin, f.d));
            self.in_idx.remove(&(f.proto, f.ggr, f.t, f.pen, f.s));
            if self.port_idx.get(&(f.proto, f.t)) == Some(&slot) {
                self.port_idx.remove(&(f.proto, f.t));
            }
        }
        self.free.push(slot);
        true
    }

    /// A snapshot of a flow's state and counters.
    pub fn flow(&self, id: u32) -> Option<FlowInfo> {
        self.by_id.get(&id).and_then(|s| self.slots[*s].as_ref()).map(|fr| {
            let f = flock(fr);
            FlowInfo { id, proto: f.proto, state: f.state, bound: f.bound, t: f.t, d: f.d, ghr: f.ghr, m: f.m, c: f.c }
        })
    }

    /// Fails the packets held for a 5-tuple: drops them and synthesises a TCP RST or an ICMP
    /// unreachable toward the application. Returns the number of packets failed.
    pub fn fail_held(&mut self, key: (u8, u32, u16, u32, u16), mode: FailMode) -> usize {
        let q = match self.held.remove(&key) {
            Some(q) => q,
            None => return 0,
        };
        self.held_total -= q.pkts.len();
        let n = q.pkts.len();
        let mut answered = false;
        for (p, h) in q.pkts {
            self.stats.held_failed += 1;
            self.outbox.push(OutItem { handle: h, hook: Hook::Out, bytes: None, injected: false });
            if answered || mode == FailMode::Silent {
                continue;
            }
            let reply = match (mode, key.0) {
                (FailMode::Reset, PROTO_TCP) => synth_rst(&p),
                (FailMode::AdminProhibited, _) => synth_icmp_unreach(&p, 13),
                _ => synth_icmp_unreach(&p, if key.0 == PROTO_TCP { 13 } else { 3 }),
            };
            if let Some(r) = reply {
                answered = true;
                self.outbox.push(OutItem { handle: Handle::Memory, hook: Hook::In, bytes: Some(r), injected: true });
            }
        }
        n
    }

    /// Verdict on a punted packet: accept (optionally with replacement bytes) or drop. A rule
    /// punt's replacement keeps the packet's length and passes as it is. An ALG punt's
    /// replacement is the same segment (same sequence number) with a rewritten payload of any
    /// length up to `ALG_MAX_GROWTH` more: the length change is recorded for the flow's sequence
    /// adjustment and the packet continues into translation like any other of its flow.
    pub fn punt_verdict(&mut self, id: u64, accept: bool, replacement: Option<&[u8]>, now: u64) -> Result<bool, String> {
        let p = match self.punts.remove(&id) {
            Some(p) => p,
            None => return Ok(false),
        };
        let drop = OutItem { handle: p.handle, hook: p.hook, bytes: None, injected: false };
        // An ALG punt whose flow ended meanwhile goes nowhere, whatever the verdict.
        if !accept || p.flow.map_or(false, |f| !self.by_id.contains_key(&f)) {
            self.outbox.push(drop);
            return Ok(true);
        }
        if let (Some(fid), Hook::Out) = (p.flow, p.hook) {
            return match self.alg_continue(fid, p.bytes, replacement, p.handle, now) {
                Ok(bytes) => {
                    self.outbox.push(OutItem { handle: p.handle, hook: p.hook, bytes, injected: false });
                    Ok(true)
                }
                Err(e) => {
                    self.outbox.push(drop);
                    Err(e)
                }
            };
        }
        let bytes = match replacement {
            Some(r) => {
                if r.len() != p.bytes.len() {
                    self.outbox.push(drop);
                    return Err("replacement must have the same length as the punted packet".into());
                }
                let mut v = r.to_vec();
                // Validate and fix checksums of the replacement.
                match parse_ip(&v, true) {
                    Ok(ip) if ip.total == v.len() => {
                        fix_ip_checksum(&mut v, ip.ihl);
                        if !is_fragment(&v) && (ip.proto == PROTO_UDP || ip.proto == PROTO_TCP) {
                            fix_l4_checksum(&mut v, ip.ihl, ip.total, ip.proto);
                        }
                    }
                    _ => {
                        self.outbox.push(drop);
                        return Err("replacement is not a valid IPv4 packet".into());
                    }
                }
                Some(v)
            }
            None => Some(p.bytes),
        };
        self.outbox.push(OutItem { handle: p.handle, hook: p.hook, bytes, injected: false });
        Ok(true)
    }

    /// An ALG punt's packet (or its replacement) goes on into translation: Ok(Some(bytes)) to
    /// send, Ok(None) if translation dropped it, Err for a replacement that is not the same
    /// segment of the same flow.
    fn alg_continue(&mut self, fid: u32, orig: Vec<u8>, replacement: Option<&[u8]>, handle: Handle, now: u64) -> Result<Option<Vec<u8>>, String> {
        let slot = match self.by_id.get(&fid) {
            Some(&s) => s,
            None => return Ok(None), // not reached: punt_verdict drops punts of ended flows
        };
        let mut v = match replacement {
            None => orig,
            Some(r) => {
                let oip = parse_ip(&orig, false).map_err(|_| "internal: punted packet unparsable".to_string())?;
                let otcp = parse_tcp(&orig, &oip).map_err(|_| "internal: punted packet unparsable".to_string())?;
                let bad = |why: &str| format!("ALG replacement {}", why);
                let ip = parse_ip(r, true).map_err(|_| bad("is not a valid IPv4 packet"))?;
                if ip.total != r.len() || is_fragment(r) || ip.proto != PROTO_TCP || ip.src != oip.src || ip.dst != oip.dst {
                    return Err(bad("is not a TCP packet of the punted flow"));
                }
                let tcp = parse_tcp(r, &ip).map_err(|_| bad("has a malformed TCP header"))?;
                if (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags) != (otcp.sport, otcp.dport, otcp.seq, otcp.ack, otcp.flags) {
                    return Err(bad("must keep the segment's ports, sequence, ack and flags"));
                }
                let (olen, nlen) = ((otcp.end - otcp.payload) as i64, (tcp.end - tcp.payload) as i64);
                if nlen > olen + ALG_MAX_GROWTH as i64 {
                    return Err(bad("grows the payload too much"));
                }
                let delta = (nlen - olen) as i32;
                if let Some(f) = &self.slots[slot] {
                    flock(f).out_adj.record(otcp.seq, delta);
                }
                r.to_vec()
            }
        };
        let ip = parse_ip(&v, true).map_err(|_| "internal: replacement unparsable".to_string())?;
        let v = match self.job(slot, &ip, true, handle, now) {
            Step::Crypto(job) => {
                let o = job.run(&mut v);
                match self.finish(&job, o, &v) {
                    Verdict::Accept => Some(v),
                    _ => None,
                }
            }
            Step::Done(_) => None,
        };
        Ok(v)
    }

    // -----------------------------------------------------------------------------------------
    // Expiry: incremental, a bounded number of slots per call, so it never stalls the data path.

    pub fn sweep(&mut self, now: u64, budget: usize) {
        if self.slots.is_empty() && self.held.is_empty() && self.punts.is_empty() {
            return;
        }
        let to = self.cfg.timeouts.clone();
        let n = self.slots.len();
        let mut expired: Vec<(u32, u8, u16, &'static str)> = Vec::new();
        for _ in 0..std::cmp::min(budget, n) {
            if self.sweep_pos >= n {
                self.sweep_pos = 0;
            }
            if let Some(fr) = &self.slots[self.sweep_pos] {
                let f = flock(fr);
                let limit = match f.state {
                    FlowState::Reserved => to.reservation,
                    FlowState::Handshake => to.tcp_handshake,
                    FlowState::Established => to.tcp_established,
                    FlowState::Closing => to.tcp_closing,
                    FlowState::Udp => to.udp_idle,
                };
                if now.saturating_sub(f.last) >= limit {
                    expired.push((f.spec_id, f.proto, f.t, f.state.as_str()));
                }
            }
            self.sweep_pos += 1;
        }
        for (id, proto, t, st) in expired {
            self.remove_flow(id);
            self.stats.expired += 1;
            self.event(Event::Expired { id, proto, t, state: st });
        }
        // Held packets and punts: small, bounded maps; checked at most every 100 ms.
        if now.saturating_sub(self.last_sweep) >= 100 {
            self.last_sweep = now;
            let held_to = to.held;
            let old: Vec<Key5> = self.held.iter().filter(|(_, q)| now.saturating_sub(q.since) >= held_to).map(|(k, _)| *k).collect();
            for k in old {
                if let Some(q) = self.held.remove(&k) {
                    self.held_total -= q.pkts.len();
                    self.stats.held_expired += q.pkts.len() as u64;
                    let count = q.pkts.len() as u32;
                    for (_, h) in q.pkts {
                        self.outbox.push(OutItem { handle: h, hook: Hook::Out, bytes: None, injected: false });
                    }
                    self.event(Event::HeldExpired { proto: k.0, src: k.1, sport: k.2, dst: k.3, dport: k.4, count });
                }
            }
            let oldp: Vec<u64> = self.punts.iter().filter(|(_, p)| now.saturating_sub(p.since) >= held_to).map(|(k, _)| *k).collect();
            for k in oldp {
                if let Some(p) = self.punts.remove(&k) {
                    self.stats.punt_expired += 1;
                    self.outbox.push(OutItem { handle: p.handle, hook: p.hook, bytes: None, injected: false });
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The data path.

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
        if let Step::Done(Verdict::Drop(_)) = s {
            self.stats.dropped += 1;
        }
        s
    }

    /// Last phase, under the engine lock: counters and events for a finished crypto job. `pkt`
    /// is the packet as the job left it (an ALG flow's inbound packet is punted from here).
    pub fn finish(&mut self, job: &CryptoJob, o: Outcome, pkt: &[u8]) -> Verdict {
        let v = match o {
            Outcome::Accepted { bound, alg } => {
                if job.protect {
                    self.stats.translated_out += 1;
                } else {
                    self.stats.translated_in += 1;
                }
                if let Some(e) = bound {
                    if let Event::Bound { d, .. } = &e {
                        // Decided once: later packets of the flow read the flag under the lock they hold anyway.
                        if job.ip.proto == PROTO_TCP && self.cfg.alg_ports.contains(d) {
                            let mut f = flock(&job.flow);
                            f.alg = !f.compat;
                        }
                    }
                    self.stats.bound += 1;
                    self.event(e);
                }
                match alg {
                    // EN -> IN on an ALG flow: verified and translated, now to the ALG.
                    Some(fid) if !job.protect => self.punt(pkt, Hook::In, Some(fid), job.handle, job.now),
                    _ => Verdict::Accept,
                }
            }
            Outcome::Malformed => {
                self.stats.malformed += 1;
                Verdict::Drop("malformed")
            }
            Outcome::NoRoom => {
                self.stats.no_room += 1;
                Verdict::Drop("no-room")
            }
            Outcome::CryptoError => {
                self.stats.crypto_errors += 1;
                Verdict::Drop("crypto")
            }
            Outcome::PortDenied => {
                self.stats.port_denied += 1;
                Verdict::Drop("port-denied")
            }
            Outcome::VerifyFailed { reason, emit, sport, dport } => {
                self.stats.verify_failed += 1;
                if reason == "replay" {
                    self.stats.replay += 1;
                }
                if reason == "wrong-source" {
                    self.stats.wrong_source += 1;
                }
                if let Some((id, count)) = emit {
                    self.event(Event::VerifyFailed { id: Some(id), proto: job.ip.proto, src: job.ip.src, sport, dport, reason, count });
                }
                Verdict::Drop("verify-failed")
            }
        };
        if let Verdict::Drop(_) = v {
            self.stats.dropped += 1;
        }
        v
    }

    /// Hands a packet to TypeScript (event 'punt'); it waits for `punt_verdict`.
    fn punt(&mut self, pkt: &[u8], hook: Hook, flow: Option<u32>, handle: Handle, now: u64) -> Verdict {
        if self.punts.len() >= self.cfg.max_held_total {
            self.stats.held_overflow += 1;
            return Verdict::Drop("punt-overflow");
        }
        let id = self.next_punt;
        self.next_punt += 1;
        self.punts.insert(id, Punted { bytes: pkt.to_vec(), flow, handle, hook, since: now });
        self.stats.punted += 1;
        self.event(Event::Punt { id, hook, flow, bytes: pkt.to_vec() });
        Verdict::Punted(id)
    }

    fn job(&self, slot: usize, ip: &Ip, protect: bool, handle: Handle, now: u64) -> Step {
        match &self.slots[slot] {
            Some(f) => Step::Crypto(CryptoJob { flow: f.clone(), ip: *ip, protect, role: self.cfg.role, ggr: self.cfg.ggr, pgr: self.cfg.pgr, now, handle }),
            None => Step::Done(Verdict::Drop("no-flow")),
        }
    }

    fn classify_inner(&mut self, pkt: &mut Vec<u8>, hook: Hook, handle: Handle, now: u64) -> Step {
        let ip = match parse_ip(pkt, false) {
            Ok(ip) => ip,
            Err(_) => {
                self.stats.malformed += 1;
                return Step::Done(Verdict::Drop("malformed"));
            }
        };
        if is_fragment(pkt) {
            self.stats.fragments += 1;
            return Step::Done(Verdict::Drop("fragment"));
        }
        // Bytes after the IP total length (link padding) are not part of the packet.
        pkt.truncate(ip.total);
        // Punt rules come first (e.g. DNS answers to TypeScript).
        if !self.cfg.punt.is_empty() && (ip.proto == PROTO_UDP || ip.proto == PROTO_TCP) && pkt.len() >= ip.ihl + 4 && ip.total >= ip.ihl + 4 {
            let sp = be16(pkt, ip.ihl);
            let dp = be16(pkt, ip.ihl + 2);
            let hit = self.cfg.punt.iter().any(|r| r.hook == hook && r.proto == ip.proto && r.sport.map_or(true, |p| p == sp) && r.dport.map_or(true, |p| p == dp));
            if hit {
                return Step::Done(self.punt(pkt, hook, None, handle, now));
            }
        }
        match ip.proto {
            PROTO_TCP | PROTO_UDP => {}
            PROTO_ICMP => return Step::Done(self.process_icmp(pkt, &ip, hook)),
            _ => {
                self.stats.malformed += 1;
                return Step::Done(Verdict::Drop("protocol"));
            }
        }
        let (sport, dport) = if ip.proto == PROTO_TCP {
            match parse_tcp(pkt, &ip) {
                Ok(t) => (t.sport, t.dport),
                Err(_) => {
                    self.stats.malformed += 1;
                    return Step::Done(Verdict::Drop("malformed"));
                }
            }
        } else {
            match parse_udp(pkt, &ip) {
                Ok(u) => (u.sport, u.dport),
                Err(_) => {
                    self.stats.malformed += 1;
                    return Step::Done(Verdict::Drop("malformed"));
                }
            }
        };
        match (self.cfg.role, hook) {
            (Role::Agent, Hook::Out) => {
                let key = (ip.proto, ip.src, sport, ip.dst, dport);
                match self.out_idx.get(&key) {
                    Some(&slot) => {
                        if ip.proto == PROTO_TCP && self.new_connection_on_old_flow(pkt, &ip, slot) {
                            // Same 5-tuple, new connection (new ISN): fresh keys are needed, so the
                            // old entry goes and the SYN is held for negotiation.
                            let (id, t) = self.slots[slot].as_ref().map(|f| flock(f)).map(|f| (f.spec_id, f.t)).unwrap_or((0, 0));
                            self.remove_flow(id);
                            self.event(Event::Expired { id, proto: PROTO_TCP, t, state: "replaced" });
                            return Step::Done(self.hold(key, pkt, &ip, handle, now));
                        }
                        self.job(slot, &ip, true, handle, now)
                    }
                    None => {
                        if in_net(ip.dst, self.cfg.vin_net, self.cfg.vin_prefix) {
                            Step::Done(self.hold(key, pkt, &ip, handle, now))
                        } else {
                            self.stats.no_flow += 1;
                            Step::Done(Verdict::Drop("no-flow"))
                        }
                    }
                }
            }
            (Role::Agent, Hook::In) => match self.in_idx.get(&(ip.proto, ip.src, sport, ip.dst, dport)) {
                Some(&slot) => self.job(slot, &ip, false, handle, now),
                None => {
                    self.stats.no_flow += 1;
                    Step::Done(Verdict::Drop("no-flow"))
                }
            },
            (Role::Gateway, Hook::In) => {
                if ip.dst != self.cfg.ggr {
                    self.stats.no_flow += 1;
                    return Step::Done(Verdict::Drop("no-flow"));
                }
                match self.port_idx.get(&(ip.proto, dport)) {
                    Some(&slot) => self.job(slot, &ip, false, handle, now),
                    None => {
                        self.stats.no_flow += 1;
                        Step::Done(Verdict::Drop("no-flow"))
                    }
                }
            }
            (Role::Gateway, Hook::Out) => {
                if ip.dst != self.cfg.pgr {
                    self.stats.no_flow += 1;
                    return Step::Done(Verdict::Drop("no-flow"));
                }
                match self.port_idx.get(&(ip.proto, dport)) {
                    Some(&slot) => {
                        let (ok, alg) = match &self.slots[slot] {
                            Some(f) => {
                                let f = flock(f);
                                (f.bound && f.pin == ip.src && f.d == sport, if f.alg { Some(f.spec_id) } else { None })
                            }
                            None => (false, None),
                        };
                        if !ok {
                            self.stats.wrong_source += 1;
                            return Step::Done(Verdict::Drop("wrong-source"));
                        }
                        if let Some(fid) = alg {
                            // The ALG sees every segment toward EN in order, before protection.
                            return Step::Done(self.punt(pkt, hook, Some(fid), handle, now));
                        }
                        self.job(slot, &ip, true, handle, now)
                    }
                    None => {
                        self.stats.no_flow += 1;
                        Step::Done(Verdict::Drop("no-flow"))
                    }
                }
            }
        }
    }

    fn new_connection_on_old_flow(&mut self, pkt: &[u8], ip: &Ip, slot: usize) -> bool {
        let tcp = match parse_tcp(pkt, ip) {
            Ok(t) => t,
            Err(_) => return false,
        };
        if tcp.flags & TCP_SYN == 0 || tcp.flags & TCP_ACK != 0 {
            return false;
        }
        match &self.slots[slot] {
            Some(f) => {
                let mut f = flock(f);
                match f.isn_out {
                    None => {
                        f.isn_out = Some(tcp.seq);
                        false
                    }
                    Some(isn) => isn != tcp.seq,
                }
            }
            None => false,
        }
    }

    fn hold(&mut self, key: Key5, pkt: &mut Vec<u8>, ip: &Ip, handle: Handle, now: u64) -> Verdict {
        if self.held_total >= self.cfg.max_held_total {
            self.stats.held_overflow += 1;
            return Verdict::Drop("held-overflow");
        }
        let max = self.cfg.max_held_per_flow;
        let is_new = !self.held.contains_key(&key);
        let q = self.held.entry(key).or_insert_with(|| HeldQ { pkts: VecDeque::new(), since: now });
        if q.pkts.len() >= max {
            self.stats.held_overflow += 1;
            return Verdict::Drop("held-overflow");
        }
        pkt.truncate(ip.total);
        q.pkts.push_back((pkt.clone(), handle));
        self.held_total += 1;
        self.stats.held += 1;
        if is_new {
            self.event(Event::Held { proto: key.0, src: key.1, sport: key.2, dst: key.3, dport: key.4 });
        }
        Verdict::Held
    }

    /// ICMP errors that quote a translated packet are translated so PMTUD and "unreachable"
    /// keep working in both directions. ICMP that quotes no translated flow (and non-error ICMP
    /// such as echo) passes unchanged: it carries no flow data.
    fn process_icmp(&mut self, pkt: &mut Vec<u8>, ip: &Ip, hook: Hook) -> Verdict {
        let e = match parse_icmp_error(pkt, ip) {
            Ok(Some(e)) => e,
            Ok(None) => {
                if pkt.len() < ip.ihl + 8 {
                    self.stats.malformed += 1;
                    return Verdict::Drop("malformed");
                }
                self.stats.accepted_plain += 1;
                return Verdict::Accept;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return Verdict::Drop("malformed");
            }
        };
        let q = e.inner_ip;
        let proto = q.proto;
        let (qs, qd) = (e.inner_sport, e.inner_dport);
        let overhead = if proto == PROTO_TCP { pccom::TCP_OPT_LEN } else { pccom::UDP_TRAILER_LEN } as u16;
        // (outer src, outer dst, quoted src:port, quoted dst:port, shrink the reported MTU)
        let found: Option<(Option<u32>, Option<u32>, (u32, u16), (u32, u16), bool)> = match (self.cfg.role, hook) {
            // A router or GGR -> PEN, quoting PEN:s -> GGR:t (our upload). Becomes VIN -> PEN
            // quoting PEN:s -> VIN:d.
            (Role::Agent, Hook::In) => self.in_idx.get(&(proto, q.dst, qd, q.src, qs)).map(|&slot| {
                let f = flock(self.slots[slot].as_ref().unwrap());
                (Some(f.vin), None, (q.src, qs), (f.vin, f.d), true)
            }),
            // EN's own stack answering a download, quoting VIN:d -> PEN:s. Becomes PEN -> GGR
            // quoting GGR:t -> PEN:s (HR then maps PEN:s as for the flow).
            (Role::Agent, Hook::Out) => self.out_idx.get(&(proto, q.dst, qd, q.src, qs)).map(|&slot| {
                let f = flock(self.slots[slot].as_ref().unwrap());
                (None, Some(f.ggr), (f.ggr, f.t), (q.dst, qd), false)
            }),
            // IN or a LAN router -> PGR, quoting PGR:t -> PIN:d. Becomes GGR -> GHR quoting
            // GHR:m -> GGR:t.
            (Role::Gateway, Hook::Out) if q.src == self.cfg.pgr => self.port_idx.get(&(proto, qs)).and_then(|&slot| {
                let f = flock(self.slots[slot].as_ref().unwrap());
                if f.bound && f.pin == q.dst && f.d == qd {
                    Some((Some(self.cfg.ggr), Some(f.ghr), (f.ghr, f.m), (self.cfg.ggr, f.t), true))
                } else {
                    None
                }
            }),
            // An internet router or EN (through HR) -> GGR, quoting GGR:t -> GHR:m (our download).
            // Becomes PGR -> PIN quoting PIN:d -> PGR:t.
            (Role::Gateway, Hook::In) if q.src == self.cfg.ggr => self.port_idx.get(&(proto, qs)).and_then(|&slot| {
                let f = flock(self.slots[slot].as_ref().unwrap());
                if f.bound && f.ghr == q.dst && f.m == qd {
                    Some((Some(self.cfg.pgr), Some(f.pin), (f.pin, f.d), (self.cfg.pgr, f.t), true))
                } else {
                    None
                }
            }),
            _ => None,
        };
        let (osrc, odst, (q_src, q_sport), (q_dst, q_dport), shrink) = match found {
            Some(x) => x,
            None => {
                self.stats.accepted_plain += 1;
                return Verdict::Accept;
            }
        };
        if let Some(a) = osrc {
            put32(pkt, 12, a);
        }
        if let Some(a) = odst {
            put32(pkt, 16, a);
        }
        let qi = e.inner;
        put32(pkt, qi + 12, q_src);
        put32(pkt, qi + 16, q_dst);
        put16(pkt, qi + q.ihl, q_sport);
        put16(pkt, qi + q.ihl + 2, q_dport);
        // Quoted IP header checksum (the quoted L4 checksum is left as is: it may be truncated).
        let qihl = q.ihl;
        let mut h = [0u8; 60];
        h[..qihl].copy_from_slice(&pkt[qi..qi + qihl]);
        fix_ip_checksum(&mut h[..qihl], qihl);
        pkt[qi..qi + qihl].copy_from_slice(&h[..qihl]);
        // Fragmentation needed: the path MTU an application sees shrinks by our overhead.
        if shrink && e.typ == 3 && e.code == 4 {
            let mtu = be16(pkt, e.off + 6);
            if mtu > 0 {
                put16(pkt, e.off + 6, std::cmp::max(mtu.saturating_sub(overhead), 68));
            }
        }
        pkt.truncate(ip.total);
        fix_ip_checksum(pkt, ip.ihl);
        let total = ip.total;
        fix_l4_checksum(pkt, ip.ihl, total, PROTO_ICMP);
        self.stats.icmp_translated += 1;
        Verdict::Accept
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
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        s.extend_from_slice(input);
        let v = self.process(&mut s, hook, Handle::Memory, now);
        let out = if v == Verdict::Accept { s.clone() } else { Vec::new() };
        self.scratch = s;
        (v, out)
    }
}

/// How much longer an ALG may make one segment's payload (an IPv4 literal grows by at most 8).
pub const ALG_MAX_GROWTH: usize = 64;

/// A flow shared between the tables (engine lock) and the crypto phase (its own lock).
pub type FlowRef = Arc<Mutex<Flow>>;

pub fn flock(f: &Mutex<Flow>) -> MutexGuard<'_, Flow> {
    match f.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Result of `Engine::classify`.
pub enum Step {
    Done(Verdict),
    Crypto(CryptoJob),
}

/// What the crypto phase reports back to `Engine::finish`.
pub enum Outcome {
    /// `alg`: the flow id of a gateway ALG flow (its inbound packets go to the ALG).
    Accepted { bound: Option<Event>, alg: Option<u32> },
    Malformed,
    NoRoom,
    CryptoError,
    PortDenied,
    /// `emit` = (flow id, failures since the last event) when an event is due (1/s per flow).
    VerifyFailed { reason: &'static str, emit: Option<(u32, u64)>, sport: u16, dport: u16 },
}

/// The crypto half of a packet: runs with only the flow's lock held, so queue threads working on
/// different flows do their AES and HMAC in parallel.
pub struct CryptoJob {
    flow: FlowRef,
    pub ip: Ip,
    /// true = protect (outbound), false = verify (inbound).
    pub protect: bool,
    role: Role,
    ggr: u32,
    pgr: u32,
    now: u64,
    /// The packet's backend handle (an ALG flow's inbound packet is punted with it).
    handle: Handle,
}

impl CryptoJob {
    pub fn run(&self, pkt: &mut Vec<u8>) -> Outcome {
        let mut f = flock(&self.flow);
        if self.protect {
            protect(&mut f, pkt, &self.ip, self.role, self.ggr, self.now)
        } else {
            unprotect(&mut f, pkt, &self.ip, self.role, self.pgr, self.now)
        }
    }
}

/// Outbound: encrypt + MAC, then rewrite addresses (agent: dst VIN:d -> GGR:t; gateway:
/// PIN:d -> PGR:t becomes GGR:t -> GHR:m).
fn protect(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, role: Role, ggr_cfg: u32, now: u64) -> Outcome {
    let (nsrc, nsport, ndst, ndport) = match role {
        Role::Agent => (ip.src, f.s, f.ggr, f.t),
        Role::Gateway => (ggr_cfg, f.t, f.ghr, f.m),
    };
    let r: Result<(), PErr> = if ip.proto == PROTO_TCP {
        if role == Role::Gateway {
            f.out_adj.shift_seq(pkt, ip); // after an ALG rewrite changed the stream's length
        }
        let tcp = match parse_tcp(pkt, ip) {
            Ok(t) => t,
            Err(_) => return Outcome::Malformed,
        };
        if tcp.flags & TCP_SYN != 0 {
            f.syn_out = true;
            if f.state == FlowState::Reserved || f.state == FlowState::Closing {
                f.state = FlowState::Handshake;
            }
        }
        if tcp.flags & (TCP_FIN | TCP_RST) != 0 {
            f.state = FlowState::Closing;
        } else if f.state == FlowState::Handshake && f.syn_out && f.syn_in && tcp.flags & TCP_SYN == 0 && tcp.flags & TCP_ACK != 0 {
            f.state = FlowState::Established;
        }
        if f.compat {
            compat_out(pkt, ip, &tcp, f, (nsrc, nsport, ndst, ndport))
        } else {
            let d = f.d;
            let rxseq = f.rxseq;
            pccom::tcp_protect(pkt, ip, &tcp, &mut f.tx, &mut f.txseq, &rxseq, d)
        }
    } else {
        let udp = match parse_udp(pkt, ip) {
            Ok(u) => u,
            Err(_) => return Outcome::Malformed,
        };
        if f.compat {
            compat_out_udp(pkt, ip, &udp, f, (nsrc, nsport, ndst, ndport))
        } else {
            f.udp_ctr += 1;
            let (c, d) = (f.udp_ctr, f.d);
            pccom::udp_protect(pkt, ip, &udp, &mut f.tx, c, d)
        }
    };
    match r {
        Ok(()) => {}
        Err(PErr::NoRoom) => return Outcome::NoRoom,
        Err(_) => return Outcome::CryptoError,
    }
    f.last = now;
    f.c.pkts_out += 1;
    f.c.bytes_out += pkt.len() as u64;
    if !f.compat {
        rewrite(pkt, ip.ihl, ip.proto, nsrc, nsport, ndst, ndport);
    }
    Outcome::Accepted { bound: None, alg: None }
}

fn verify_failed(f: &mut Flow, reason: &'static str, sport: u16, dport: u16, now: u64) -> Outcome {
    f.c.verify_failed += 1;
    f.vfail_pending += 1;
    let mut emit = None;
    // Rate limit: one event per flow per second, carrying the count since the last.
    if f.vfail_last == 0 || now.saturating_sub(f.vfail_last) >= 1000 {
        emit = Some((f.spec_id, f.vfail_pending));
        f.vfail_pending = 0;
        f.vfail_last = now.max(1);
    }
    Outcome::VerifyFailed { reason, emit, sport, dport }
}

/// Inbound: verify + decrypt + strip, then rewrite (agent: src GGR:t -> VIN:d; gateway:
/// GHR:m -> GGR:t becomes PGR:t -> PIN:d). Binds gateway reservations.
fn unprotect(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, role: Role, pgr: u32, now: u64) -> Outcome {
    let (sport, dport) = (be16(pkt, ip.ihl), be16(pkt, ip.ihl + 2));
    if role == Role::Gateway && f.bound && (ip.src != f.ghr || sport != f.m) {
        return verify_failed(f, "wrong-source", sport, dport, now);
    }
    let mut learned_d: Option<u16> = None;
    let r: Result<(), VErr> = if ip.proto == PROTO_TCP {
        match parse_tcp(pkt, ip) {
            Err(_) => Err(VErr::Malformed),
            Ok(tcp) => {
                if !f.bound && (tcp.flags & TCP_SYN == 0 || tcp.flags & TCP_ACK != 0) {
                    // A reservation binds only on an initial SYN.
                    Err(VErr::NoMac)
                } else if f.compat {
                    compat_in(pkt, ip, &tcp, f).map(|_| ())
                } else {
                    let (rxseq, txseq) = (f.rxseq, f.txseq);
                    match pccom::tcp_verify(pkt, ip, &tcp, &mut f.rx, &rxseq, &txseq) {
                        Ok(ok) => {
                            f.rxseq.update(ok.ext_seq);
                            learned_d = ok.d;
                            if tcp.flags & TCP_SYN != 0 {
                                f.syn_in = true;
                                if f.state == FlowState::Reserved || f.state == FlowState::Closing {
                                    f.state = FlowState::Handshake;
                                }
                            }
                            if tcp.flags & (TCP_FIN | TCP_RST) != 0 {
                                f.state = FlowState::Closing;
                            } else if f.state == FlowState::Handshake && f.syn_out && f.syn_in && tcp.flags & TCP_SYN == 0 && tcp.flags & TCP_ACK != 0 {
                                f.state = FlowState::Established;
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        }
    } else {
        match parse_udp(pkt, ip) {
            Err(_) => Err(VErr::Malformed),
            Ok(udp) => {
                if f.compat {
                    compat_in_udp(pkt, ip, &udp, f)
                } else {
                    match pccom::udp_verify(pkt, ip, &udp, &mut f.rx, &mut f.replay) {
                        Ok((d, _)) => {
                            learned_d = Some(d);
                            if f.state == FlowState::Reserved {
                                f.state = FlowState::Udp;
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        }
    };
    if let Err(e) = r {
        return verify_failed(f, e.as_str(), sport, dport, now);
    }
    let mut bound = None;
    let (nsrc, nsport, ndst, ndport) = if role == Role::Gateway && !f.bound {
        let d = learned_d.unwrap_or(f.d);
        if d == 0 || (!f.ports.is_empty() && !f.ports.contains(&d)) {
            return Outcome::PortDenied;
        }
        f.bound = true;
        f.ghr = ip.src;
        f.m = sport;
        f.d = d;
        bound = Some(Event::Bound { id: f.spec_id, proto: f.proto, t: f.t, ghr: f.ghr, m: f.m, pin: f.pin, d });
        (pgr, f.t, f.pin, d)
    } else if role == Role::Gateway && learned_d.map_or(false, |d| d != f.d) {
        return verify_failed(f, "port-mismatch", sport, dport, now);
    } else {
        match role {
            Role::Agent => (f.vin, f.d, ip.dst, dport),
            Role::Gateway => (pgr, f.t, f.pin, f.d),
        }
    };
    f.last = now;
    f.c.pkts_in += 1;
    f.c.bytes_in += pkt.len() as u64;
    if role == Role::Gateway && ip.proto == PROTO_TCP && f.out_adj.active {
        // EN acknowledges the adjusted stream: back to the numbers IN sent.
        if let Ok(nip) = parse_ip(pkt, true) {
            f.out_adj.unshift_ack(pkt, &nip);
        }
    }
    rewrite(pkt, ip.ihl, ip.proto, nsrc, nsport, ndst, ndport);
    Outcome::Accepted { bound, alg: if f.alg { Some(f.spec_id) } else { None } }
}

/// Rewrites addresses and ports, then writes the IP checksum and the full L4 checksum (a
/// payload verdict makes the skb CHECKSUM_NONE, so the full checksum is always needed).
pub fn rewrite(pkt: &mut [u8], ihl: usize, proto: u8, src: u32, sport: u16, dst: u32, dport: u16) {
    put32(pkt, 12, src);
    put32(pkt, 16, dst);
    put16(pkt, ihl, sport);
    put16(pkt, ihl + 2, dport);
    let total = be16(pkt, 2) as usize;
    fix_ip_checksum(pkt, ihl);
    fix_l4_checksum(pkt, ihl, total, proto);
}

// Compat mode helpers: the flow's addresses are rewritten first, then the keyed checksum is
// computed over the final header (the receiver checks it before rewriting).
fn compat_out(pkt: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, f: &mut Flow, a: (u32, u16, u32, u16)) -> Result<(), PErr> {
    let ext = f.txseq.extend(tcp.seq);
    f.txseq.update(ext);
    let pos = if tcp.flags & TCP_SYN != 0 { ext + 1 } else { ext };
    pkt.truncate(ip.total);
    if !pccom::compat_crypt(&mut f.tx, PROTO_TCP, pos, &mut pkt[tcp.payload..tcp.end]) {
        return Err(PErr::Crypto);
    }
    rewrite(pkt, ip.ihl, PROTO_TCP, a.0, a.1, a.2, a.3);
    let nip = Ip { src: a.0, dst: a.2, ..*ip };
    pccom::compat_seal(pkt, &nip, PROTO_TCP, tcp.payload, &f.tx)
}

fn compat_out_udp(pkt: &mut Vec<u8>, ip: &Ip, udp: &Udp, f: &mut Flow, a: (u32, u16, u32, u16)) -> Result<(), PErr> {
    pkt.truncate(ip.total);
    if !pccom::compat_crypt(&mut f.tx, PROTO_UDP, 0, &mut pkt[udp.payload..udp.end]) {
        return Err(PErr::Crypto);
    }
    rewrite(pkt, ip.ihl, PROTO_UDP, a.0, a.1, a.2, a.3);
    let nip = Ip { src: a.0, dst: a.2, ..*ip };
    pccom::compat_seal(pkt, &nip, PROTO_UDP, udp.payload, &f.tx)
}

fn compat_in(pkt: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, f: &mut Flow) -> Result<(), VErr> {
    pccom::compat_check(pkt, ip, PROTO_TCP, tcp.payload, &f.rx)?;
    let ext = f.rxseq.extend(tcp.seq);
    f.rxseq.update(ext);
    let pos = if tcp.flags & TCP_SYN != 0 { ext + 1 } else { ext };
    if !pccom::compat_crypt(&mut f.rx, PROTO_TCP, pos, &mut pkt[tcp.payload..tcp.end]) {
        return Err(VErr::Crypto);
    }
    if tcp.flags & TCP_SYN != 0 && tcp.flags & TCP_ACK == 0 && f.d == 0 {
        // Compat mode has no option to carry d: the reservation must name exactly one port.
        f.d = f.ports.first().copied().unwrap_or(0);
    }
    Ok(())
}

fn compat_in_udp(pkt: &mut Vec<u8>, ip: &Ip, udp: &Udp, f: &mut Flow) -> Result<(), VErr> {
    pccom::compat_check(pkt, ip, PROTO_UDP, udp.payload, &f.rx)?;
    if !pccom::compat_crypt(&mut f.rx, PROTO_UDP, 0, &mut pkt[udp.payload..udp.end]) {
        return Err(VErr::Crypto);
    }
    if f.d == 0 {
        f.d = f.ports.first().copied().unwrap_or(0);
    }
    if f.state == FlowState::Reserved {
        f.state = FlowState::Udp;
    }
    Ok(())
}

/// TCP RST (with ACK) answering `orig` (an outbound segment PEN:s -> VIN:d), sent VIN:d -> PEN:s.
pub fn synth_rst(orig: &[u8]) -> Option<Vec<u8>> {
    let ip = parse_ip(orig, false).ok()?;
    let tcp = parse_tcp(orig, &ip).ok()?;
    if tcp.flags & TCP_RST != 0 {
        return None;
    }
    let mut seg_len = (tcp.end - tcp.payload) as u32;
    if tcp.flags & TCP_SYN != 0 {
        seg_len += 1;
    }
    if tcp.flags & TCP_FIN != 0 {
        seg_len += 1;
    }
    let mut b = vec![0u8; 40];
    b[0] = 0x45;
    put16(&mut b, 2, 40);
    b[6] = 0x40;
    b[8] = 64;
    b[9] = PROTO_TCP;
    put32(&mut b, 12, ip.dst);
    put32(&mut b, 16, ip.src);
    put16(&mut b, 20, tcp.dport);
    put16(&mut b, 22, tcp.sport);
    let (seq, flags) = if tcp.flags & TCP_ACK != 0 { (tcp.ack, TCP_RST) } else { (0, TCP_RST | TCP_ACK) };
    put32(&mut b, 24, seq);
    put32(&mut b, 28, tcp.seq.wrapping_add(seg_len));
    b[32] = 5 << 4;
    b[33] = flags;
    fix_ip_checksum(&mut b, 20);
    fix_l4_checksum(&mut b, 20, 40, PROTO_TCP);
    Some(b)
}

/// ICMP destination unreachable (code 3 port, 13 administratively prohibited) answering `orig`.
pub fn synth_icmp_unreach(orig: &[u8], code: u8) -> Option<Vec<u8>> {
    let ip = parse_ip(orig, false).ok()?;
    let quote = std::cmp::min(ip.total, ip.ihl + 8);
    let total = 20 + 8 + quote;
    let mut b = vec![0u8; total];
    b[0] = 0x45;
    put16(&mut b, 2, total as u16);
    b[8] = 64;
    b[9] = PROTO_ICMP;
    put32(&mut b, 12, ip.dst);
    put32(&mut b, 16, ip.src);
    b[20] = 3;
    b[21] = code;
    b[28..].copy_from_slice(&orig[..quote]);
    fix_ip_checksum(&mut b, 20);
    fix_l4_checksum(&mut b, 20, total, PROTO_ICMP);
    Some(b)
}
