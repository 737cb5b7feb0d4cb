//! Unprotect: a packet arrives from the internet (hook `in`).
//!
//! - Agent: the gateway's answer `GGR:t -> PEN:s` (after the home router). The VAT entry is found
//!   by that 5-tuple; the payload is decrypted and its MAC verified, and the application receives
//!   `VIN:d -> PEN:s`.
//! - Gateway: EN's packet `GHR:m -> GGR:t`. The reservation of t is found; the payload is
//!   decrypted and its MAC verified, and IN receives `PGR:t -> PIN:d`. A reservation binds to
//!   GHR:m only from packets that verify, and commits only on one a replay cannot be (UDP: the
//!   first datagram, whose counter the replay window then refuses to anyone else; TCP: the first
//!   segment newer than the SYN, while every source whose SYN verified is a candidate that hears
//!   IN's answers) — event `bound`; after that only GHR:m may use it. An ALG flow's packet then
//!   goes to TypeScript (see punt.rs).
//! - TCP replay rules (conn.rs): a SYN for an established connection, anything after it closed,
//!   and the payload of segments IN or the application already acknowledged never pass.
//!
//! `classify_unprotect` runs under the engine lock; `unprotect` is the crypto phase, under the
//! flow's lock only. Nothing that fails verification is passed: it is dropped and counted.

use super::conn::{make_bare, Pass, Seg};
use super::flow::{payload_len, Binding, End, Flow, FlowState, MAX_CANDIDATES};
use super::{Copies, Engine, Event, Handle, Outcome, Reason, Role, Step};
use crate::pccom::{self, TcpPos, VErr};
use crate::pkt::*;

impl Engine {
    pub(super) fn classify_unprotect(&mut self, ip: &Ip, sport: u16, dport: u16, handle: Handle, now: u64) -> Step {
        let flow = match self.cfg.role {
            // GGR:t -> PEN:s
            Role::Agent => self.table.vat_in(&(ip.proto, ip.src, sport, ip.dst, dport)),
            // GHR:m -> GGR:t
            Role::Gateway if ip.dst == self.cfg.ggr => self.table.by_port(ip.proto, dport),
            Role::Gateway => None,
        };
        match flow {
            Some(f) => Step::Crypto(self.job(f, ip, false, handle, now)),
            None => self.no_flow(),
        }
    }
}

fn reason_of(e: VErr) -> Reason {
    match e {
        VErr::NoMac => Reason::NoMac,
        VErr::BadMac => Reason::BadMac,
        VErr::Replay => Reason::Replay,
        VErr::Malformed => Reason::Malformed,
        VErr::Crypto => Reason::Crypto,
    }
}

/// The crypto phase: verify + decrypt + strip, then rewrite for the protected side (agent:
/// `GGR:t -> PEN:s` becomes `VIN:d -> PEN:s`; gateway: `GHR:m -> GGR:t` becomes `PGR:t -> PIN:d`).
/// Binds a gateway reservation.
pub(super) fn unprotect(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, pgr: u32, now: u64) -> Outcome {
    let (sport, dport) = (be16(pkt, ip.ihl), be16(pkt, ip.ihl + 2));
    let src = Binding { ghr: ip.src, m: sport };
    // Roaming (docs/pccom.md §6.1): a bound flow hears another source only with a packet newer
    // than anything it accepted (judged from the header before any crypto; anything else is
    // `wrong-source` at no cost), and moves there only once that packet verified.
    let roam = match f.binding() {
        Some(b) => src != b,
        None => false,
    };
    let r = if ip.proto == PROTO_TCP { unprotect_tcp(f, pkt, ip, src, roam) } else { unprotect_udp(f, pkt, ip, roam) };
    let v = match r {
        Ok(v) => v,
        Err(Reason::PortDenied) => return Outcome::Refused { reason: Reason::PortDenied, report: None },
        Err(reason) => return refused(f, reason, ip, sport, dport, now),
    };
    let mut roamed = None;
    if roam {
        if let End::Gateway(g) = &mut f.end {
            g.bind(src);
            roamed = Some(Event::Bound { id: f.id, proto: f.proto, t: f.t, ghr: ip.src, m: sport, pin: g.pin, d: f.d });
        }
    }
    if v.probe {
        // Verified, newer than every probe before it: it has done its work (the binding above,
        // the NAT mapping on its way); neither IN nor the application sees it.
        return Outcome::Probe { bound: roamed };
    }
    if let Some(d) = v.d {
        f.d = d;
    }
    let mut bound_event = roamed;
    let roamed = bound_event.is_some();
    let to = match &mut f.end {
        End::Agent(a) => (a.vin, f.d, ip.dst, dport),
        End::Gateway(g) => {
            if g.bound().is_none() {
                let bound = Event::Bound { id: f.id, proto: f.proto, t: f.t, ghr: ip.src, m: sport, pin: g.pin, d: f.d };
                if v.initial_syn {
                    // A verified initial SYN: its source is a candidate (a replay verifies too). The
                    // first one is reported at once, so the control plane decides the flow now.
                    if g.n_candidates == 0 {
                        bound_event = Some(bound);
                    }
                    if !g.candidates[..g.n_candidates as usize].contains(&src) && (g.n_candidates as usize) < MAX_CANDIDATES {
                        g.candidates[g.n_candidates as usize] = src;
                        g.n_candidates += 1;
                    }
                } else {
                    // UDP's first datagram, or TCP's first segment newer than the SYN (only EN can
                    // make one): EN's mapping as the home router made it. Reported again if it is
                    // not the first candidate reported.
                    if ip.proto == PROTO_UDP || g.n_candidates == 0 || g.candidates[0] != src {
                        bound_event = Some(bound);
                    }
                    g.bind(src);
                    g.n_candidates = 0;
                }
            }
            (pgr, f.t, g.pin, f.d)
        }
    };
    f.last = now;
    f.c.pkts_in += 1;
    f.c.bytes_in += pkt.len() as u64;
    f.c.payload_in += payload_len(pkt); // verified and stripped: what IN (or the application) gets
    f.last_in_failed = false;
    let mut alg = None;
    if let End::Gateway(g) = &f.end {
        if ip.proto == PROTO_TCP && g.adj().active {
            // EN acknowledges the adjusted stream: back to the numbers IN sent.
            if let Ok(nip) = parse_ip(pkt, true) {
                g.adj().unshift_ack(pkt, &nip);
            }
        }
        if g.alg {
            alg = Some(f.id);
        }
    }
    rewrite(pkt, ip.ihl, ip.proto, to.0, to.1, to.2, to.3);
    Outcome::Accepted { bound: bound_event, alg, learned: v.d, copies: Copies::default(), bare: v.bare, roamed }
}

/// What a verified packet brought.
struct Verified {
    /// The service port its option or trailer names, when it is the flow's first (to be set).
    d: Option<u16>,
    /// TCP: only the bare header passed (conn.rs).
    bare: bool,
    /// TCP: an initial SYN (at an uncommitted reservation its source becomes a candidate; any
    /// other verified segment commits the binding).
    initial_syn: bool,
    /// A probe (§6.1): verified, newer than the probes before it, consumed here.
    probe: bool,
}

/// A verified packet's d against the flow: the first one names it (and must be an allowed port);
/// later ones must name the same. Returns the d to set, if it is the first.
fn check_d(f: &Flow, d: Option<u16>) -> Result<Option<u16>, Reason> {
    let (d, g) = match (d, f.gateway()) {
        (Some(d), Some(g)) => (d, g),
        _ => return Ok(None),
    };
    if f.d == 0 {
        if d == 0 || (!g.ports.is_empty() && !g.ports.contains(&d)) {
            return Err(Reason::PortDenied);
        }
        return Ok(Some(d));
    }
    if d != f.d {
        return Err(Reason::PortMismatch);
    }
    Ok(None)
}

/// TCP: the connection's admission rules, the binding's candidates, verification, and what of the
/// segment passes.
fn unprotect_tcp(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, src: Binding, roam: bool) -> Result<Verified, Reason> {
    let tcp = parse_tcp(pkt, ip).map_err(|_| Reason::Malformed)?;
    let initial_syn = tcp.flags & TCP_SYN != 0 && tcp.flags & TCP_ACK == 0;
    let probe = if f.compat { None } else { pccom::tcp_probe_number(&pkt[tcp.off + 20..tcp.off + tcp.hlen], tcp.flags) };
    if let Some(g) = f.gateway() {
        if g.bound().is_none() {
            // Before the binding commits, only a SYN may come from a new source (and only while
            // there is room for one more candidate).
            if !f.is_candidate(src) {
                if !initial_syn {
                    return Err(Reason::WrongSource);
                }
                if g.n_candidates as usize >= MAX_CANDIDATES {
                    return Err(Reason::BindingFull);
                }
            }
        }
    }
    let closed = f.state == FlowState::Closed;
    if !(closed && tcp.flags & (TCP_FIN | TCP_SYN) == TCP_FIN) {
        f.conn.admit_in(f.state, tcp.flags, tcp.seq)?;
    }
    let ext_seq = f.rxseq.extend(tcp.seq);
    let ext_ack = if tcp.flags & TCP_ACK != 0 { f.txseq.extend(tcp.ack) } else { 0 };
    let (isn_sender, isn_receiver) = f.conn.isns_in(tcp.flags, tcp.seq);
    let pos = TcpPos { ext_seq, ext_ack, isn_sender, isn_receiver };
    let len = (tcp.end - tcp.payload) as u32;
    let mut seg = Seg { flags: tcp.flags, seq: tcp.seq, ext_seq, ext_ack, len };
    let newer = match probe {
        Some(n) => n > f.probe_rx,
        None => f.conn.newer_in(&seg),
    };
    if roam && !newer {
        return Err(Reason::WrongSource);
    }
    if probe.is_some() && (!newer || f.state != FlowState::Established && f.state != FlowState::Closing) {
        return Err(Reason::Replay);
    }
    // The MSS the local stack will be told (the sender's engine already clamped it): the size of
    // the local stack's segments, which GSO super-packets are cut to (gso.rs).
    let mss = if tcp.flags & TCP_SYN != 0 { Some(crate::gso::mss_option(pkt, &tcp).unwrap_or(536)) } else { None };
    let d = if f.compat {
        compat_tcp(pkt, ip, &tcp, f, ext_seq).map_err(reason_of)?;
        None
    } else {
        let ok = pccom::tcp_verify(pkt, ip, &tcp, &mut f.rx, &pos).map_err(reason_of)?;
        if let Some(n) = ok.probe {
            f.probe_rx = n;
            return Ok(Verified { d: None, bare: false, initial_syn: false, probe: true });
        }
        ok.d
    };
    let d = check_d(f, d)?;
    let pass = f.conn.pass_in(&seg);
    if closed && pass != Pass::Bare {
        // After the close only a retransmitted FIN the local end already acknowledged comes
        // through, bare (its TIME_WAIT answers it with the last ACK again).
        return Err(Reason::Closed);
    }
    f.rxseq.update(ext_seq);
    if let Some(m) = mss {
        f.seg_mss = m;
    }
    let bare = pass == Pass::Bare;
    if bare {
        let nip = parse_ip(pkt, true).map_err(|_| Reason::Malformed)?;
        let ntcp = parse_tcp(pkt, &nip).map_err(|_| Reason::Malformed)?;
        make_bare(pkt, &ntcp);
        seg.flags &= !(TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG);
        seg.len = 0;
    }
    f.conn.record_in(&mut f.state, &seg);
    Ok(Verified { d, bare, initial_syn, probe: false })
}

fn unprotect_udp(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, roam: bool) -> Result<Verified, Reason> {
    let udp = parse_udp(pkt, ip).map_err(|_| Reason::Malformed)?;
    if roam && (f.compat || udp_counter(pkt, &udp) <= f.replay.as_deref().map_or(0, |r| r.top())) {
        // Only a counter above every one accepted is newer (a replay never is).
        return Err(Reason::WrongSource);
    }
    let d = if f.compat {
        compat_udp(pkt, ip, &udp, f).map_err(reason_of)?;
        None
    } else {
        let replay = f.replay.as_deref_mut().ok_or(Reason::Malformed)?;
        let d = pccom::udp_verify(pkt, ip, &udp, &mut f.rx, replay).map_err(reason_of)?.0;
        if d == 0 && pkt.len() == udp.payload {
            // A probe (§6.1): no payload, d = 0. Only a flow that knows its d takes one.
            if f.d == 0 {
                return Err(Reason::PortDenied);
            }
            return Ok(Verified { d: None, bare: false, initial_syn: false, probe: true });
        }
        Some(d)
    };
    let d = check_d(f, d)?;
    if f.state == FlowState::Reserved {
        f.state = FlowState::Udp;
    }
    Ok(Verified { d, bare: false, initial_syn: false, probe: false })
}

/// The counter in a UDP trailer, read before anything is verified (0: no trailer).
fn udp_counter(pkt: &[u8], udp: &Udp) -> u64 {
    if udp.end - udp.payload < pccom::UDP_TRAILER_LEN {
        return 0;
    }
    let mut cb = [0u8; 8];
    cb[2..].copy_from_slice(&pkt[udp.end - 18..udp.end - 12]);
    u64::from_be_bytes(cb)
}

/// A refusal counted on the flow and reported (rate-limited) as a `verify-failed` event.
fn refused(f: &mut Flow, reason: Reason, ip: &Ip, sport: u16, dport: u16, now: u64) -> Outcome {
    let report = f.count_verify_failure(reason.as_str(), ip.src, sport, dport, now);
    Outcome::Refused { reason, report }
}

// Compat mode: the keyed checksum is checked over the header as it arrived, then the payload is
// decrypted. It has no option to carry d: a reservation names exactly one port, which is d.
fn compat_tcp(pkt: &mut [u8], ip: &Ip, tcp: &Tcp, f: &mut Flow, ext_seq: u64) -> Result<(), VErr> {
    pccom::compat_check(pkt, ip, PROTO_TCP, tcp.payload, &f.rx)?;
    if !pccom::compat_crypt(&mut f.rx, PROTO_TCP, pccom::data_pos(ext_seq, tcp.flags), &mut pkt[tcp.payload..tcp.end]) {
        return Err(VErr::Crypto);
    }
    if tcp.flags & TCP_SYN != 0 && tcp.flags & TCP_ACK == 0 {
        learn_compat_d(f);
    }
    Ok(())
}

fn compat_udp(pkt: &mut [u8], ip: &Ip, udp: &Udp, f: &mut Flow) -> Result<(), VErr> {
    pccom::compat_check(pkt, ip, PROTO_UDP, udp.payload, &f.rx)?;
    if !pccom::compat_crypt(&mut f.rx, PROTO_UDP, 0, &mut pkt[udp.payload..udp.end]) {
        return Err(VErr::Crypto);
    }
    learn_compat_d(f);
    Ok(())
}

fn learn_compat_d(f: &mut Flow) {
    if f.d == 0 {
        f.d = f.gateway().and_then(|g| g.ports.first().copied()).unwrap_or(0);
    }
}
