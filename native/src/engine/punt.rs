//! Punts: packets handed to TypeScript (event `punt`) that wait for its verdict.
//!
//! - Punt rules (config.rs) take matching packets before any table lookup (e.g. DNS answers,
//!   which the agent rewrites to VINs). A rule punt's replacement keeps the packet's length.
//! - The ALG hooks (gateway, `Config::alg_ports`): every segment of an ALG flow goes through
//!   TypeScript, IN -> EN before protection (protect.rs), EN -> IN after verification and
//!   translation (`Engine::finish`). An IN -> EN replacement may change the payload length; the
//!   change is recorded for the flow's sequence adjustment (seqadj.rs) and the segment continues
//!   into protection.
//!
//! Unanswered punts are dropped after `heldMs` (expiry.rs).

use super::flow::End;
use super::slab::FlowRef;
use super::{Engine, Event, Handle, Hook, OutItem, Reason, Verdict};
use crate::pkt::*;
use std::collections::HashMap;

/// How much longer an ALG may make one segment's payload (an IPv4 literal grows by at most 8).
pub const ALG_MAX_GROWTH: usize = 64;

struct Punted {
    bytes: Vec<u8>,
    /// ALG punts: the flow id (its packets continue into translation after the verdict).
    flow: Option<u32>,
    handle: Handle,
    hook: Hook,
    since: u64,
}

pub(super) struct Punts {
    waiting: HashMap<u64, Punted>,
    next: u64,
}

impl Default for Punts {
    fn default() -> Punts {
        Punts { waiting: HashMap::new(), next: 1 }
    }
}

impl Punts {
    /// Drops every punt that waited `limit` ms or longer; returns the drops to carry out.
    pub fn take_expired(&mut self, now: u64, limit: u64) -> Vec<OutItem> {
        let old: Vec<u64> = self.waiting.iter().filter(|(_, p)| now.saturating_sub(p.since) >= limit).map(|(k, _)| *k).collect();
        old.into_iter().filter_map(|k| self.waiting.remove(&k)).map(|p| OutItem { handle: p.handle, hook: p.hook, bytes: None, injected: false }).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Gateway: the flow just learned that its d is an ALG port; from now on its segments go through
/// the ALG (decided once: later packets read the flag under the flow lock they hold anyway).
pub(super) fn mark_alg(flow: &FlowRef) {
    let mut f = match flow.lock() {
        Some(f) => f,
        None => return,
    };
    let compat = f.compat;
    if let End::Gateway(g) = &mut f.end {
        g.alg = !compat;
    }
}

impl Engine {
    /// Does a punt rule take this packet?
    pub(super) fn punt_rule_matches(&self, pkt: &[u8], ip: &Ip, hook: Hook) -> bool {
        if self.cfg.punt.is_empty() || (ip.proto != PROTO_UDP && ip.proto != PROTO_TCP) || pkt.len() < ip.ihl + 4 || ip.total < ip.ihl + 4 {
            return false;
        }
        // Agent: a packet to a VIN is always translated, never punted (a DNS query to an internal
        // resolver reached through GSRA must not leave untranslated after an accept verdict).
        if hook == Hook::Out && self.cfg.role == super::Role::Agent && self.cfg.in_vin_net(ip.dst) {
            return false;
        }
        let (sp, dp) = (be16(pkt, ip.ihl), be16(pkt, ip.ihl + 2));
        self.cfg.punt.iter().any(|r| r.hook == hook && r.proto == ip.proto && r.sport.map_or(true, |p| p == sp) && r.dport.map_or(true, |p| p == dp))
    }

    /// Hands a packet to TypeScript (event `punt`); it waits for `punt_verdict`.
    pub(super) fn punt(&mut self, pkt: &[u8], hook: Hook, flow: Option<u32>, handle: Handle, now: u64) -> Verdict {
        if self.punts.waiting.len() >= self.cfg.max_held_total {
            self.stats.held_overflow += 1;
            return Verdict::Drop(Reason::HeldOverflow);
        }
        let id = self.punts.next;
        self.punts.next += 1;
        self.punts.waiting.insert(id, Punted { bytes: pkt.to_vec(), flow, handle, hook, since: now });
        self.stats.punted += 1;
        self.event(Event::Punt { id, hook, flow, bytes: pkt.to_vec() });
        Verdict::Punted(id)
    }

    /// Verdict on a punted packet: accept (optionally with replacement bytes) or drop. A rule
    /// punt's replacement keeps the packet's length and passes as it is. An ALG punt's
    /// replacement is the same segment (same sequence number) with a rewritten payload of any
    /// length up to `ALG_MAX_GROWTH` more: the length change is recorded for the flow's sequence
    /// adjustment and the packet continues into translation like any other of its flow.
    pub fn punt_verdict(&mut self, id: u64, accept: bool, replacement: Option<&[u8]>, now: u64) -> Result<bool, String> {
        let p = match self.punts.waiting.remove(&id) {
            Some(p) => p,
            None => return Ok(false),
        };
        let (handle, hook) = (p.handle, p.hook);
        // An ALG punt whose flow ended meanwhile goes nowhere, whatever the verdict.
        let flow = p.flow.and_then(|fid| self.table.by_id(fid));
        let r = if !accept || (p.flow.is_some() && flow.is_none()) {
            self.stats.count_drop(if accept { Reason::NoFlow } else { Reason::PuntRefused });
            Ok(None)
        } else {
            match (flow, hook) {
                (Some(f), Hook::Out) => self.alg_continue(&f, p.bytes, replacement, handle, now),
                _ => rule_replacement(p.bytes, replacement).map(Some),
            }
        };
        let bytes = match r {
            Ok(b) => b,
            Err(e) => {
                self.stats.count_drop(Reason::PuntRefused);
                self.outbox.push(OutItem { handle, hook, bytes: None, injected: false });
                return Err(e);
            }
        };
        self.outbox.push(OutItem { handle, hook, bytes, injected: false });
        Ok(true)
    }

    /// An ALG punt's packet (or its replacement) goes on into protection: Ok(Some(bytes)) to
    /// send, Ok(None) if protection dropped it, Err for a replacement that is not the same
    /// segment of the same flow.
    fn alg_continue(&mut self, flow: &FlowRef, orig: Vec<u8>, replacement: Option<&[u8]>, handle: Handle, now: u64) -> Result<Option<Vec<u8>>, String> {
        let mut v = match replacement {
            None => orig,
            Some(r) => {
                let (seq, delta) = alg_replacement(&orig, r)?;
                if let Some(mut f) = flow.lock() {
                    if let End::Gateway(g) = &mut f.end {
                        g.adj_mut().record(seq, delta);
                    }
                }
                r.to_vec()
            }
        };
        let ip = parse_ip(&v, true).map_err(|_| "internal: replacement unparsable".to_string())?;
        let job = self.job(flow.clone(), &ip, true, handle, now);
        let o = job.run(&mut v);
        Ok(match self.finish(&job, o, &v) {
            Verdict::Accept => Some(v),
            _ => None,
        })
    }
}

/// Checks an ALG replacement against the punted segment: same addresses, ports, sequence, ack
/// and flags, payload at most `ALG_MAX_GROWTH` longer. Returns (sequence, length change).
fn alg_replacement(orig: &[u8], r: &[u8]) -> Result<(u32, i32), String> {
    let oip = parse_ip(orig, false).map_err(|_| "internal: punted packet unparsable".to_string())?;
    let otcp = parse_tcp(orig, &oip).map_err(|_| "internal: punted packet unparsable".to_string())?;
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
    Ok((otcp.seq, (nlen - olen) as i32))
}

/// A punt rule's verdict bytes: the packet itself, or a same-length replacement whose checksums
/// are rewritten.
fn rule_replacement(orig: Vec<u8>, replacement: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let r = match replacement {
        Some(r) => r,
        None => return Ok(orig),
    };
    if r.len() != orig.len() {
        return Err("replacement must have the same length as the punted packet".into());
    }
    let mut v = r.to_vec();
    match parse_ip(&v, true) {
        Ok(ip) if ip.total == v.len() => {
            fix_ip_checksum(&mut v, ip.ihl);
            if !is_fragment(&v) && (ip.proto == PROTO_UDP || ip.proto == PROTO_TCP) {
                fix_l4_checksum(&mut v, ip.ihl, ip.total, ip.proto);
            }
            Ok(v)
        }
        _ => Err("replacement is not a valid IPv4 packet".into()),
    }
}
