//! Protect: a packet leaves the protected side toward the internet (hook `out`).
//!
//! - Agent: an application on EN sends `PEN:s -> VIN:d`. The VAT entry for that 5-tuple is found
//!   (none yet: a pooled port is taken at once, see pool.rs, or the packet is held while
//!   TypeScript negotiates, see held.rs); the payload is
//!   encrypted, the MAC added, and the packet leaves as `PEN:s -> GGR:t`.
//! - Gateway: IN answers `PIN:d -> PGR:t`. The reservation of t is found and must be bound to
//!   exactly that PIN:d (an ALG flow's segment goes to TypeScript first, see punt.rs); the
//!   payload is encrypted, the MAC added, and the packet leaves as `GGR:t -> GHR:m` (before the
//!   binding commits: to every candidate, see unprotect.rs).
//! - TCP (conn.rs): a segment the remote end already acknowledged leaves as its bare header, so
//!   no old position is ever encrypted again and the remote still answers it with an ACK.
//!
//! `classify_protect` runs under the engine lock; `protect` is the crypto phase, under the flow's
//! lock only.

use super::conn::{make_bare, Pass, Seg};
use super::flow::{payload_len, End, Flow};
use super::{Copies, Engine, Event, Handle, Hook, Outcome, Reason, Role, Step, Verdict};
use crate::pccom::{self, PErr, TcpPos, PACKET_LIMIT};
use crate::pkt::*;

impl Engine {
    pub(super) fn classify_protect(&mut self, pkt: &mut Vec<u8>, ip: &Ip, sport: u16, dport: u16, handle: Handle, now: u64) -> Step {
        match self.cfg.role {
            Role::Agent => self.agent_out(pkt, ip, sport, dport, handle, now),
            Role::Gateway => self.gateway_out(pkt, ip, sport, dport, handle, now),
        }
    }

    /// `PEN:s -> VIN:d` from an application on EN.
    fn agent_out(&mut self, pkt: &mut Vec<u8>, ip: &Ip, sport: u16, dport: u16, handle: Handle, now: u64) -> Step {
        let key = (ip.proto, ip.src, sport, ip.dst, dport);
        let flow = match self.table.vat_out(&key) {
            Some(f) => f,
            None if self.cfg.in_vin_net(ip.dst) => {
                // A pooled port, if one is ready (pool.rs); else held for TypeScript (held.rs).
                let opens = ip.proto == PROTO_UDP || is_initial_syn(pkt, ip);
                match self.take_pooled(key, opens, now).then(|| self.table.vat_out(&key)).flatten() {
                    Some(f) => f,
                    None => return Step::Done(self.hold(key, pkt, ip, handle, now)),
                }
            }
            None => return self.no_flow(),
        };
        if ip.proto == PROTO_TCP && is_initial_syn(pkt, ip) && flow.lock().map_or(false, |f| new_connection(&f, pkt, ip)) {
            // Same 5-tuple, new connection (new ISN): fresh keys are needed, so the old entry
            // goes and the SYN is held for negotiation.
            let (id, t, close, c) = match flow.lock() {
                Some(f) => (f.id, f.t, f.close_signal().as_str(), f.counters()),
                None => return self.no_flow(),
            };
            self.remove_flow(id);
            self.event(Event::Expired { id, proto: PROTO_TCP, t, state: "replaced", close, c });
            return Step::Done(self.hold(key, pkt, ip, handle, now));
        }
        Step::Crypto(self.job(flow, ip, true, handle, now))
    }

    /// `PIN:d -> PGR:t` from IN on the LAN.
    fn gateway_out(&mut self, pkt: &[u8], ip: &Ip, sport: u16, dport: u16, handle: Handle, now: u64) -> Step {
        if ip.dst != self.cfg.pgr {
            return self.no_flow();
        }
        let flow = match self.table.by_port(ip.proto, dport) {
            Some(f) => f,
            None => return self.no_flow(),
        };
        let (from_pin, alg) = match flow.lock() {
            Some(f) => match f.gateway() {
                Some(g) => (f.destinations().is_some() && g.pin == ip.src && f.d == sport, if g.alg { Some(f.id) } else { None }),
                None => (false, None),
            },
            None => (false, None),
        };
        if !from_pin {
            self.stats.wrong_source += 1;
            return Step::Done(Verdict::Drop(Reason::WrongSource));
        }
        if let Some(fid) = alg {
            // The ALG sees every segment toward EN in order, before protection.
            return Step::Done(self.punt(pkt, Hook::Out, Some(fid), handle, now));
        }
        Step::Crypto(self.job(flow, ip, true, handle, now))
    }
}

/// SYN without ACK: the only segment that can open a new connection on an old 5-tuple. Checked
/// before the flow's lock is taken, so other segments never take it here.
fn is_initial_syn(pkt: &[u8], ip: &Ip) -> bool {
    match parse_tcp(pkt, ip) {
        Ok(t) => t.flags & TCP_SYN != 0 && t.flags & TCP_ACK == 0,
        Err(_) => false,
    }
}

/// An initial SYN whose ISN differs from the one the flow's connection was opened with: a new
/// connection on the same 5-tuple (agent).
fn new_connection(f: &Flow, pkt: &[u8], ip: &Ip) -> bool {
    let seq = be32(pkt, ip.ihl + 4);
    matches!(f.end, End::Agent(_)) && f.conn.isn_local().map_or(false, |isn| isn != seq)
}

/// The crypto phase: encrypt + MAC, then rewrite the addresses for the internet (agent:
/// `PEN:s -> VIN:d` becomes `PEN:s -> GGR:t`; gateway: `PIN:d -> PGR:t` becomes `GGR:t -> GHR:m`).
pub(super) fn protect(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, ggr: u32, now: u64) -> Outcome {
    if f.c.pkts_out >= PACKET_LIMIT {
        return Outcome::Refused { reason: Reason::KeyExhausted, report: None };
    }
    let payload = payload_len(pkt);
    let mut copies = Copies::default();
    let to = match &f.end {
        End::Agent(a) => (ip.src, a.s, a.ggr, f.t),
        End::Gateway(_) => match f.destinations() {
            Some((b, more)) => {
                copies.to[..more.len()].copy_from_slice(more);
                copies.n = more.len();
                (ggr, f.t, b.ghr, b.m)
            }
            None => return Outcome::Refused { reason: Reason::NoFlow, report: None },
        },
    };
    let mut bare = false;
    let r: Result<(), PErr> = if ip.proto == PROTO_TCP {
        if let End::Gateway(g) = &f.end {
            g.adj().shift_seq(pkt, ip); // after an ALG rewrite changed the stream's length
        }
        match protect_tcp(f, pkt, ip, to) {
            Ok(b) => {
                bare = b;
                Ok(())
            }
            Err(Ok(reason)) => return Outcome::Refused { reason, report: None },
            Err(Err(e)) => Err(e),
        }
    } else {
        let udp = match parse_udp(pkt, ip) {
            Ok(u) => u,
            Err(_) => return Outcome::Refused { reason: Reason::Malformed, report: None },
        };
        if f.compat {
            compat_udp(pkt, ip, &udp, f, to)
        } else {
            f.udp_ctr += 1;
            pccom::udp_protect(pkt, ip, &udp, &mut f.tx, f.udp_ctr, f.d)
        }
    };
    match r {
        Ok(()) => {}
        Err(PErr::NoRoom) => return Outcome::Refused { reason: Reason::NoRoom, report: None },
        Err(PErr::CounterExhausted) => return Outcome::Refused { reason: Reason::KeyExhausted, report: None },
        Err(PErr::Crypto) => return Outcome::Refused { reason: Reason::Crypto, report: None },
    }
    f.last = now;
    if let End::Agent(a) = &mut f.end {
        a.last_out = now;
    }
    f.c.pkts_out += 1;
    f.c.bytes_out += pkt.len() as u64;
    f.c.payload_out += if bare { 0 } else { payload };
    if !f.compat {
        rewrite(pkt, ip.ihl, ip.proto, to.0, to.1, to.2, to.3);
    }
    Outcome::Accepted { bound: None, alg: None, learned: None, copies, bare, roamed: false }
}

/// TCP: the connection's admission, what of the segment goes (conn.rs), then the PCCOM option.
/// Ok(true) when only the bare header went; Err(Ok(reason)) refused; Err(Err(e)) failed.
fn protect_tcp(f: &mut Flow, pkt: &mut Vec<u8>, ip: &Ip, to: (u32, u16, u32, u16)) -> Result<bool, Result<Reason, PErr>> {
    let mut tcp = parse_tcp(pkt, ip).map_err(|_| Ok(Reason::Malformed))?;
    f.conn.admit_out(f.state, tcp.flags, tcp.seq).map_err(Ok)?;
    let ext_seq = f.txseq.extend(tcp.seq);
    let ext_ack = if tcp.flags & TCP_ACK != 0 { f.rxseq.extend(tcp.ack) } else { 0 };
    let mut seg = Seg { flags: tcp.flags, seq: tcp.seq, ext_seq, ext_ack, len: (tcp.end - tcp.payload) as u32 };
    let mut ip = *ip;
    let bare = f.conn.pass_out(&seg) == Pass::Bare;
    if bare {
        make_bare(pkt, &tcp);
        ip = parse_ip(pkt, true).map_err(|_| Ok(Reason::Malformed))?;
        tcp = parse_tcp(pkt, &ip).map_err(|_| Ok(Reason::Malformed))?;
        seg.flags = tcp.flags;
        seg.len = 0;
    }
    if f.compat {
        compat_tcp(pkt, &ip, &tcp, f, ext_seq, to).map_err(Err)?;
    } else {
        let (isn_sender, isn_receiver) = f.conn.isns_out(tcp.flags, tcp.seq);
        let pos = TcpPos { ext_seq, ext_ack, isn_sender, isn_receiver };
        pccom::tcp_protect(pkt, &ip, &tcp, &mut f.tx, &pos, f.d).map_err(Err)?;
    }
    f.txseq.update(ext_seq);
    f.conn.record_out(&mut f.state, &seg);
    Ok(bare)
}

// Compat mode: the flow's addresses are rewritten first, then the keyed checksum is computed over
// the final header (the receiver checks it before rewriting).
fn compat_tcp(pkt: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, f: &mut Flow, ext_seq: u64, to: (u32, u16, u32, u16)) -> Result<(), PErr> {
    compat_seal(pkt, ip, PROTO_TCP, (tcp.payload, tcp.end), pccom::data_pos(ext_seq, tcp.flags), f, to)
}

fn compat_udp(pkt: &mut Vec<u8>, ip: &Ip, udp: &Udp, f: &mut Flow, to: (u32, u16, u32, u16)) -> Result<(), PErr> {
    compat_seal(pkt, ip, PROTO_UDP, (udp.payload, udp.end), 0, f, to)
}

fn compat_seal(pkt: &mut Vec<u8>, ip: &Ip, proto: u8, payload: (usize, usize), pos: u64, f: &mut Flow, to: (u32, u16, u32, u16)) -> Result<(), PErr> {
    pkt.truncate(ip.total);
    if !pccom::compat_crypt(&mut f.tx, proto, pos, &mut pkt[payload.0..payload.1]) {
        return Err(PErr::Crypto);
    }
    rewrite(pkt, ip.ihl, proto, to.0, to.1, to.2, to.3);
    let nip = Ip { src: to.0, dst: to.2, ..*ip };
    pccom::compat_seal(pkt, &nip, proto, payload.0, &f.tx)
}

impl Engine {
    /// The payload size a TCP GSO super-packet taken at `out` is cut to (gso.rs): the segment
    /// size of the local stack, from the MSS its peer announced and the path MTU it was told
    /// (Flow::seg_mss, seg_mtu). None when the engine cannot take the super-packet as segments
    /// of a flow it simply protects — not TCP, a punt rule, no flow (the packet would be held),
    /// the handshake not seen, an ALG flow (its segments go to TypeScript one by one), compat
    /// mode, another source: the backend then lets the kernel segment it.
    pub fn gso_size(&self, pkt: &[u8], hook: Hook) -> Option<usize> {
        if hook != Hook::Out {
            return None;
        }
        let ip = parse_ip(pkt, false).ok()?;
        if ip.proto != PROTO_TCP || is_fragment(pkt) || self.punt_rule_matches(pkt, &ip, hook) {
            return None;
        }
        let tcp = parse_tcp(pkt, &ip).ok()?;
        let flow = match self.cfg.role {
            Role::Agent => self.table.vat_out(&(ip.proto, ip.src, tcp.sport, ip.dst, tcp.dport))?,
            Role::Gateway if ip.dst == self.cfg.pgr => self.table.by_port(ip.proto, tcp.dport)?,
            Role::Gateway => return None,
        };
        let f = flow.lock()?;
        if f.compat || f.seg_mss == 0 {
            return None;
        }
        if let End::Gateway(g) = &f.end {
            if g.alg || g.pin != ip.src || f.d != tcp.sport || f.destinations().is_none() {
                return None;
            }
        }
        let s = crate::gso::segment_size(f.seg_mss, f.seg_mtu, tcp.hlen);
        if s < crate::gso::MIN_MSS {
            None
        } else {
            Some(s)
        }
    }
}
