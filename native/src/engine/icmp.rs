//! ICMP errors that quote a translated packet are translated too, so "unreachable" and path MTU
//! discovery keep working in both directions; the MTU an application sees shrinks by PCCOM's
//! overhead. ICMP that quotes no translated flow (and non-error ICMP such as echo) passes
//! unchanged: it carries no flow data.
//!
//! ICMP is not authenticated, so an error about a protected flow is translated only once it
//! validates (docs/pccom.md §8.1; RFC 5927, and RFC 5925 §7.8 for why TCP-AO ignores hard errors):
//! - TCP: the quoted sequence number must lie in the window of the quoted stream — between what
//!   the receiving end acknowledged and what was sent — as this engine saw it;
//! - UDP (no sequence number): from the internet only "fragmentation needed" is taken; from the
//!   office LAN also an error sent by the flow's own internal host (e.g. port unreachable);
//! - "fragmentation needed" with an MTU below `Config::pmtu_floor` (1280) is never taken: all of
//!   a host's GSRA flows reach it from the gateway's one LAN address, so one accepted clamp would
//!   shrink every one of them;
//! - source quench (deprecated, RFC 6633) is never taken.
//! Errors EN's own stack sends about a download (agent, hook `out`) are local and pass as before.

use super::flow::Flow;
use super::slab::FlowRef;
use super::{Engine, Hook, Reason, Role, Verdict};
use crate::pccom;
use crate::pkt::*;

/// Which stream an error quotes, as this engine sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// A packet this engine protected toward the internet (the error came from the internet).
    Sent,
    /// A packet this engine delivered to the office LAN (the error came from the LAN).
    Delivered,
    /// A packet delivered to EN's own stack, which sends the error itself (trusted).
    Local,
}

/// How to rewrite one error: the outer source and destination (None = unchanged), the quoted
/// packet's source and destination, and whether a "fragmentation needed" MTU shrinks.
struct Rewrite {
    src: Option<u32>,
    dst: Option<u32>,
    quoted_src: (u32, u16),
    quoted_dst: (u32, u16),
    shrink_mtu: bool,
    /// The flow, when the error is about what this side sent (its stack learns the path MTU).
    sent: Option<FlowRef>,
}

impl Engine {
    pub(super) fn icmp(&mut self, pkt: &mut Vec<u8>, ip: &Ip, hook: Hook) -> Verdict {
        let e = match parse_icmp_error(pkt, ip) {
            Ok(Some(e)) => e,
            Ok(None) if pkt.len() >= ip.ihl + 8 => {
                self.stats.accepted_plain += 1;
                return Verdict::Accept;
            }
            _ => {
                self.stats.malformed += 1;
                return Verdict::Drop(Reason::Malformed);
            }
        };
        let rw = match self.icmp_rewrite(&e, hook, ip.src, be16(pkt, e.off + 6)) {
            Ok(Some(rw)) => rw,
            Ok(None) => {
                self.stats.accepted_plain += 1;
                return Verdict::Accept;
            }
            Err(r) => return Verdict::Drop(r),
        };
        if let Some(a) = rw.src {
            put32(pkt, 12, a);
        }
        if let Some(a) = rw.dst {
            put32(pkt, 16, a);
        }
        let (qi, qihl) = (e.inner, e.inner_ip.ihl);
        put32(pkt, qi + 12, rw.quoted_src.0);
        put32(pkt, qi + 16, rw.quoted_dst.0);
        put16(pkt, qi + qihl, rw.quoted_src.1);
        put16(pkt, qi + qihl + 2, rw.quoted_dst.1);
        // Quoted IP header checksum (the quoted L4 checksum is left as is: it may be truncated).
        let mut h = [0u8; 60];
        h[..qihl].copy_from_slice(&pkt[qi..qi + qihl]);
        fix_ip_checksum(&mut h[..qihl], qihl);
        pkt[qi..qi + qihl].copy_from_slice(&h[..qihl]);
        // Fragmentation needed: the path MTU an application sees shrinks by our overhead.
        if rw.shrink_mtu && e.typ == 3 && e.code == 4 {
            let overhead = if e.inner_ip.proto == PROTO_TCP { pccom::TCP_OPT_LEN } else { pccom::UDP_TRAILER_LEN } as u16;
            let mtu = be16(pkt, e.off + 6);
            if mtu > 0 {
                let told = std::cmp::max(mtu.saturating_sub(overhead), 68);
                put16(pkt, e.off + 6, told);
                // The local stack's segments shrink to this path MTU: so do the GSO cuts (gso.rs).
                if let Some(mut f) = rw.sent.as_ref().and_then(|fr| fr.lock()) {
                    if f.seg_mtu == 0 || told < f.seg_mtu {
                        f.seg_mtu = told;
                    }
                }
            }
        }
        pkt.truncate(ip.total);
        fix_ip_checksum(pkt, ip.ihl);
        fix_l4_checksum(pkt, ip.ihl, ip.total, PROTO_ICMP);
        self.stats.icmp_translated += 1;
        Verdict::Accept
    }

    /// The flow an error quotes, as a rewrite; None if it quotes none of ours; Err if it quotes
    /// one but does not validate. `src` is the error's sender, `mtu` its next-hop MTU field.
    fn icmp_rewrite(&self, e: &IcmpErr, hook: Hook, src: u32, mtu: u16) -> Result<Option<Rewrite>, Reason> {
        let rw = self.icmp_quoted(e, hook, |f, quoted| validate(f, e, quoted, src, mtu, self.cfg.pmtu_floor));
        match rw {
            Some(Ok(rw)) => Ok(Some(rw)),
            Some(Err(r)) => Err(r),
            None => Ok(None),
        }
    }

    /// Finds the flow an error quotes, checks it with `check` (under the flow's lock) and returns
    /// the rewrite; None if it quotes none of ours.
    fn icmp_quoted(&self, e: &IcmpErr, hook: Hook, check: impl Fn(&Flow, Quoted) -> Result<(), Reason>) -> Option<Result<Rewrite, Reason>> {
        let q = e.inner_ip;
        let (proto, qs, qd) = (q.proto, e.inner_sport, e.inner_dport);
        match (self.cfg.role, hook) {
            // A router or GGR -> PEN, quoting PEN:s -> GGR:t (our upload). Becomes VIN -> PEN
            // quoting PEN:s -> VIN:d.
            (Role::Agent, Hook::In) => self.table.vat_in(&(proto, q.dst, qd, q.src, qs)).and_then(|fr| {
                let f = fr.lock()?;
                let a = f.agent()?;
                Some(check(&f, Quoted::Sent).map(|_| Rewrite { sent: Some(fr.clone()), src: Some(a.vin), dst: None, quoted_src: (q.src, qs), quoted_dst: (a.vin, f.d), shrink_mtu: true }))
            }),
            // EN's own stack answering a download, quoting VIN:d -> PEN:s. Becomes PEN -> GGR
            // quoting GGR:t -> PEN:s (HR then maps PEN:s as for the flow).
            (Role::Agent, Hook::Out) => self.table.vat_out(&(proto, q.dst, qd, q.src, qs)).and_then(|fr| {
                let f = fr.lock()?;
                let a = f.agent()?;
                Some(check(&f, Quoted::Local).map(|_| Rewrite { sent: None, src: None, dst: Some(a.ggr), quoted_src: (a.ggr, f.t), quoted_dst: (q.dst, qd), shrink_mtu: false }))
            }),
            // IN or a LAN router -> PGR, quoting PGR:t -> PIN:d. Becomes GGR -> GHR quoting
            // GHR:m -> GGR:t.
            (Role::Gateway, Hook::Out) if q.src == self.cfg.pgr => self.table.by_port(proto, qs).and_then(|fr| {
                let f = fr.lock()?;
                let (g, b) = (f.gateway()?, f.binding()?);
                if g.pin != q.dst || f.d != qd {
                    return None;
                }
                Some(check(&f, Quoted::Delivered).map(|_| Rewrite { sent: None, src: Some(self.cfg.ggr), dst: Some(b.ghr), quoted_src: (b.ghr, b.m), quoted_dst: (self.cfg.ggr, f.t), shrink_mtu: true }))
            }),
            // An internet router or EN (through HR) -> GGR, quoting GGR:t -> GHR:m (our download).
            // Becomes PGR -> PIN quoting PIN:d -> PGR:t.
            (Role::Gateway, Hook::In) if q.src == self.cfg.ggr => self.table.by_port(proto, qs).and_then(|fr| {
                let f = fr.lock()?;
                let (g, b) = (f.gateway()?, f.binding()?);
                if b.ghr != q.dst || b.m != qd {
                    return None;
                }
                Some(check(&f, Quoted::Sent).map(|_| Rewrite { sent: Some(fr.clone()), src: Some(self.cfg.pgr), dst: Some(g.pin), quoted_src: (g.pin, f.d), quoted_dst: (self.cfg.pgr, f.t), shrink_mtu: true }))
            }),
            _ => None,
        }
    }
}

/// Does an error about flow `f` validate (see the module comment)?
fn validate(f: &Flow, e: &IcmpErr, quoted: Quoted, src: u32, mtu: u16, floor: u16) -> Result<(), Reason> {
    if quoted == Quoted::Local {
        return Ok(());
    }
    let frag_needed = e.typ == 3 && e.code == 4;
    if e.typ == 4 {
        return Err(Reason::IcmpInvalid);
    }
    if frag_needed && mtu < floor {
        return Err(Reason::IcmpMtuFloor);
    }
    if e.inner_ip.proto == PROTO_TCP {
        let ok = match quoted {
            Quoted::Sent => f.conn.in_send_window(f.txseq.extend(e.inner_seq)),
            _ => f.conn.in_delivered_window(f.rxseq.extend(e.inner_seq)),
        };
        return if ok { Ok(()) } else { Err(Reason::IcmpInvalid) };
    }
    let from_pin = quoted == Quoted::Delivered && f.gateway().map_or(false, |g| g.pin == src);
    if frag_needed || from_pin {
        Ok(())
    } else {
        Err(Reason::IcmpInvalid)
    }
}
