//! ICMP errors that quote a translated packet are translated too, so "unreachable" and path MTU
//! discovery keep working in both directions; the MTU an application sees shrinks by PCCOM's
//! overhead. ICMP that quotes no translated flow (and non-error ICMP such as echo) passes
//! unchanged: it carries no flow data.

use super::{Engine, Hook, Role, Verdict};
use crate::lock::lock;
use crate::pccom;
use crate::pkt::*;

/// How to rewrite one error: the outer source and destination (None = unchanged), the quoted
/// packet's source and destination, and whether a "fragmentation needed" MTU shrinks.
struct Rewrite {
    src: Option<u32>,
    dst: Option<u32>,
    quoted_src: (u32, u16),
    quoted_dst: (u32, u16),
    shrink_mtu: bool,
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
                return Verdict::Drop("malformed");
            }
        };
        let rw = match self.icmp_rewrite(&e, hook) {
            Some(rw) => rw,
            None => {
                self.stats.accepted_plain += 1;
                return Verdict::Accept;
            }
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
                put16(pkt, e.off + 6, std::cmp::max(mtu.saturating_sub(overhead), 68));
            }
        }
        pkt.truncate(ip.total);
        fix_ip_checksum(pkt, ip.ihl);
        fix_l4_checksum(pkt, ip.ihl, ip.total, PROTO_ICMP);
        self.stats.icmp_translated += 1;
        Verdict::Accept
    }

    /// The flow an error quotes, as a rewrite; None if it quotes none of ours.
    fn icmp_rewrite(&self, e: &IcmpErr, hook: Hook) -> Option<Rewrite> {
        let q = e.inner_ip;
        let (proto, qs, qd) = (q.proto, e.inner_sport, e.inner_dport);
        match (self.cfg.role, hook) {
            // A router or GGR -> PEN, quoting PEN:s -> GGR:t (our upload). Becomes VIN -> PEN
            // quoting PEN:s -> VIN:d.
            (Role::Agent, Hook::In) => self.table.vat_in(&(proto, q.dst, qd, q.src, qs)).and_then(|f| {
                let f = lock(f);
                let a = f.agent()?;
                Some(Rewrite { src: Some(a.vin), dst: None, quoted_src: (q.src, qs), quoted_dst: (a.vin, f.d), shrink_mtu: true })
            }),
            // EN's own stack answering a download, quoting VIN:d -> PEN:s. Becomes PEN -> GGR
            // quoting GGR:t -> PEN:s (HR then maps PEN:s as for the flow).
            (Role::Agent, Hook::Out) => self.table.vat_out(&(proto, q.dst, qd, q.src, qs)).and_then(|f| {
                let f = lock(f);
                let a = f.agent()?;
                Some(Rewrite { src: None, dst: Some(a.ggr), quoted_src: (a.ggr, f.t), quoted_dst: (q.dst, qd), shrink_mtu: false })
            }),
            // IN or a LAN router -> PGR, quoting PGR:t -> PIN:d. Becomes GGR -> GHR quoting
            // GHR:m -> GGR:t.
            (Role::Gateway, Hook::Out) if q.src == self.cfg.pgr => self.table.by_port(proto, qs).and_then(|f| {
                let f = lock(f);
                let (g, b) = (f.gateway()?, f.binding()?);
                if g.pin != q.dst || f.d != qd {
                    return None;
                }
                Some(Rewrite { src: Some(self.cfg.ggr), dst: Some(b.ghr), quoted_src: (b.ghr, b.m), quoted_dst: (self.cfg.ggr, f.t), shrink_mtu: true })
            }),
            // An internet router or EN (through HR) -> GGR, quoting GGR:t -> GHR:m (our download).
            // Becomes PGR -> PIN quoting PIN:d -> PGR:t.
            (Role::Gateway, Hook::In) if q.src == self.cfg.ggr => self.table.by_port(proto, qs).and_then(|f| {
                let f = lock(f);
                let (g, b) = (f.gateway()?, f.binding()?);
                if b.ghr != q.dst || b.m != qd {
                    return None;
                }
                Some(Rewrite { src: Some(self.cfg.pgr), dst: Some(g.pin), quoted_src: (g.pin, f.d), quoted_dst: (self.cfg.pgr, f.t), shrink_mtu: true })
            }),
            _ => None,
        }
    }
}
