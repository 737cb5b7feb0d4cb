//! Unprotect: a packet arrives from the internet (hook `in`).
//!
//! - Agent: the gateway's answer `GGR:t -> PEN:s` (after the home router). The VAT entry is found
//!   by that 5-tuple; the MAC is verified, the payload decrypted, and the application receives
//!   `VIN:d -> PEN:s`.
//! - Gateway: EN's packet `GHR:m -> GGR:t`. The reservation of t is found; the MAC is verified,
//!   the payload decrypted, and IN receives `PGR:t -> PIN:d`. The first packet that verifies binds
//!   the reservation to GHR:m and d (event `bound`); after that only GHR:m may use it. An ALG
//!   flow's packet then goes to TypeScript (see punt.rs).
//!
//! `classify_unprotect` runs under the engine lock; `unprotect` is the crypto phase, under the
//! flow's lock only. Nothing that fails verification is passed: it is dropped and counted.

use super::flow::{Binding, End, Flow, FlowState};
use super::{Engine, Event, Handle, Outcome, Role, Step};
use crate::pccom::{self, VErr};
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
            Some(f) => Step::Crypto(self.job(f.clone(), ip, false, handle, now)),
            None => self.no_flow(),
        }
    }
}

/// The crypto phase: verify + decrypt + strip, then rewrite for the protected side (agent:
/// `GGR:t -> PEN:s` becomes `VIN:d -> PEN:s`; gateway: `GHR:m -> GGR:t` becomes `PGR:t -> PIN:d`).
/// Binds a gateway reservation.
pub(super) fn unprotect(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, pgr: u32, now: u64) -> Outcome {
    let (sport, dport) = (be16(pkt, ip.ihl), be16(pkt, ip.ihl + 2));
    if let Some(b) = f.binding() {
        if ip.src != b.ghr || sport != b.m {
            return verify_failed(f, "wrong-source", sport, dport, now);
        }
    }
    let bound = f.is_bound();
    let mut learned_d: Option<u16> = None;
    let r: Result<(), VErr> = if ip.proto == PROTO_TCP {
        match parse_tcp(pkt, ip) {
            Err(_) => Err(VErr::Malformed),
            // A reservation binds only on an initial SYN.
            Ok(tcp) if !bound && (tcp.flags & TCP_SYN == 0 || tcp.flags & TCP_ACK != 0) => Err(VErr::NoMac),
            Ok(tcp) if f.compat => compat_tcp(pkt, ip, &tcp, f),
            Ok(tcp) => {
                let (rxseq, txseq) = (f.rxseq, f.txseq);
                pccom::tcp_verify(pkt, ip, &tcp, &mut f.rx, &rxseq, &txseq).map(|ok| {
                    f.rxseq.update(ok.ext_seq);
                    learned_d = ok.d;
                    f.track_tcp(tcp.flags, false);
                })
            }
        }
    } else {
        match parse_udp(pkt, ip) {
            Err(_) => Err(VErr::Malformed),
            Ok(udp) if f.compat => compat_udp(pkt, ip, &udp, f),
            Ok(udp) => pccom::udp_verify(pkt, ip, &udp, &mut f.rx, &mut f.replay).map(|(d, _)| {
                learned_d = Some(d);
                if f.state == FlowState::Reserved {
                    f.state = FlowState::Udp;
                }
            }),
        }
    };
    if let Err(e) = r {
        return verify_failed(f, e.as_str(), sport, dport, now);
    }
    let mut bound_event = None;
    let to = match &mut f.end {
        End::Agent(a) => (a.vin, f.d, ip.dst, dport),
        End::Gateway(g) => match g.bound {
            None => {
                // The binding packet: EN's mapping as the home router made it, and d.
                let d = learned_d.unwrap_or(f.d);
                if d == 0 || (!g.ports.is_empty() && !g.ports.contains(&d)) {
                    return Outcome::PortDenied;
                }
                g.bound = Some(Binding { ghr: ip.src, m: sport });
                f.d = d;
                bound_event = Some(Event::Bound { id: f.id, proto: f.proto, t: f.t, ghr: ip.src, m: sport, pin: g.pin, d });
                (pgr, f.t, g.pin, d)
            }
            Some(_) if learned_d.map_or(false, |d| d != f.d) => return verify_failed(f, "port-mismatch", sport, dport, now),
            Some(_) => (pgr, f.t, g.pin, f.d),
        },
    };
    f.last = now;
    f.c.pkts_in += 1;
    f.c.bytes_in += pkt.len() as u64;
    let mut alg = None;
    if let End::Gateway(g) = &f.end {
        if ip.proto == PROTO_TCP && g.out_adj.active {
            // EN acknowledges the adjusted stream: back to the numbers IN sent.
            if let Ok(nip) = parse_ip(pkt, true) {
                g.out_adj.unshift_ack(pkt, &nip);
            }
        }
        if g.alg {
            alg = Some(f.id);
        }
    }
    rewrite(pkt, ip.ihl, ip.proto, to.0, to.1, to.2, to.3);
    Outcome::Accepted { bound: bound_event, alg }
}

fn verify_failed(f: &mut Flow, reason: &'static str, sport: u16, dport: u16, now: u64) -> Outcome {
    let emit = f.count_verify_failure(now);
    Outcome::VerifyFailed { reason, emit, sport, dport }
}

// Compat mode: the keyed checksum is checked over the header as it arrived, then the payload is
// decrypted. It has no option to carry d: a reservation names exactly one port, which is d.
fn compat_tcp(pkt: &mut [u8], ip: &Ip, tcp: &Tcp, f: &mut Flow) -> Result<(), VErr> {
    pccom::compat_check(pkt, ip, PROTO_TCP, tcp.payload, &f.rx)?;
    let ext = f.rxseq.extend(tcp.seq);
    f.rxseq.update(ext);
    let pos = if tcp.flags & TCP_SYN != 0 { ext + 1 } else { ext };
    if !pccom::compat_crypt(&mut f.rx, PROTO_TCP, pos, &mut pkt[tcp.payload..tcp.end]) {
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
    if f.state == FlowState::Reserved {
        f.state = FlowState::Udp;
    }
    Ok(())
}

fn learn_compat_d(f: &mut Flow) {
    if f.d == 0 {
        f.d = f.gateway().and_then(|g| g.ports.first().copied()).unwrap_or(0);
    }
}
