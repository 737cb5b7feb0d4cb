//! Held packets (agent): the first packets of a 5-tuple into the VIN range wait here, never
//! dropped and never passed untranslated, while TypeScript negotiates. `add_flow` releases them
//! translated (table.rs); `fail_held` drops them and answers the application; expiry drops them
//! after `heldMs` (expiry.rs). Bounded per 5-tuple and in total.
//!
//! Only a packet that can open a flow is held: a UDP datagram, or a TCP initial SYN. A TCP segment
//! without SYN (an ACK, data, a FIN) belongs to a connection the agent no longer knows (it ended,
//! its session was lost, the agent restarted without it): it never takes a reservation and never
//! leaves the PC, and the application hears a RST at once (`notFirst`). On a fresh port such a
//! segment would meet a home router that has no connection for it: conntrack calls it INVALID
//! and passes it untranslated, with the PC's private address as its source.

use super::synth::{synth_icmp_unreach, synth_rst};
use super::{Engine, Event, Handle, Hook, Key5, OutItem, Reason, Verdict};
use crate::pkt::{build, parse_tcp, Ip, PROTO_TCP, TCP_ACK, TCP_SYN};
use std::collections::{HashMap, VecDeque};

/// How `fail_held` answers the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Reset,
    PortUnreachable,
    AdminProhibited,
    Silent,
}

pub(super) type HeldPackets = VecDeque<(Vec<u8>, Handle)>;

struct Queue {
    pkts: HeldPackets,
    since: u64,
}

#[derive(Default)]
pub(super) struct Held {
    queues: HashMap<Key5, Queue>,
    total: usize,
}

impl Held {
    /// Takes the packets held for `key`.
    pub fn take(&mut self, key: &Key5) -> Option<HeldPackets> {
        let q = self.queues.remove(key)?;
        self.total -= q.pkts.len();
        Some(q.pkts)
    }

    /// Takes every queue held for `limit` ms or longer.
    pub fn take_expired(&mut self, now: u64, limit: u64) -> Vec<(Key5, HeldPackets)> {
        let old: Vec<Key5> = self.queues.iter().filter(|(_, q)| now.saturating_sub(q.since) >= limit).map(|(k, _)| *k).collect();
        old.into_iter().filter_map(|k| self.take(&k).map(|p| (k, p))).collect()
    }

    /// Are packets held for `key`?
    pub fn has(&self, key: &Key5) -> bool {
        self.queues.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

impl Engine {
    /// Holds an outbound packet of a 5-tuple without a VAT entry; the first one is reported
    /// (event `held`).
    pub(super) fn hold(&mut self, key: Key5, pkt: &mut Vec<u8>, ip: &Ip, handle: Handle, now: u64) -> Verdict {
        if key.0 == PROTO_TCP && !opens_connection(pkt, ip) {
            return self.refuse_not_first(pkt);
        }
        if self.held.total >= self.cfg.max_held_total {
            self.stats.held_overflow += 1;
            return Verdict::Drop(Reason::HeldOverflow);
        }
        let max = self.cfg.max_held_per_flow;
        let is_new = !self.held.queues.contains_key(&key);
        let q = self.held.queues.entry(key).or_insert_with(|| Queue { pkts: VecDeque::new(), since: now });
        if q.pkts.len() >= max {
            self.stats.held_overflow += 1;
            return Verdict::Drop(Reason::HeldOverflow);
        }
        pkt.truncate(ip.total);
        q.pkts.push_back((pkt.clone(), handle));
        self.held.total += 1;
        self.stats.held += 1;
        if is_new {
            self.event(Event::Held { proto: key.0, src: key.1, sport: key.2, dst: key.3, dport: key.4 });
        }
        Verdict::Held
    }

    /// A TCP segment without SYN for a 5-tuple with no VAT entry: dropped, and answered with a RST
    /// so the application learns at once that its connection is gone (a RST itself gets none).
    fn refuse_not_first(&mut self, pkt: &[u8]) -> Verdict {
        self.stats.not_first += 1;
        if let Some(r) = synth_rst(pkt) {
            self.outbox.push(OutItem { handle: Handle::Memory, hook: Hook::In, bytes: Some(r), injected: true });
        }
        Verdict::Drop(Reason::NotFirst)
    }

    /// Fails the packets held for a 5-tuple: drops them and synthesises a TCP RST or an ICMP
    /// unreachable toward the application. Returns the number of packets failed.
    pub fn fail_held(&mut self, key: Key5, mode: FailMode) -> usize {
        let pkts = match self.held.take(&key) {
            Some(p) => p,
            None => return 0,
        };
        let n = pkts.len();
        let mut answered = false;
        for (p, h) in pkts {
            self.stats.held_failed += 1;
            self.stats.count_drop(Reason::HeldFailed);
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

    /// Ends a live TCP flow the agent cannot keep (the gateway lost it) so that its application
    /// learns at once, even one that only waits for data: the flow leaves the table, and a bare
    /// ACK half the sequence space away from what the flow last received is injected toward the
    /// application. TCP answers a segment outside its window with an ACK (RFC 9293 §3.10.7.4);
    /// that ACK finds no flow, is refused as not-first (`hold`) and answered with a RST whose
    /// sequence number is the ACK's own acknowledgment - exactly what the application expects -
    /// so the connection resets. A UDP flow just leaves. Returns false for an unknown id.
    pub fn reset_flow(&mut self, id: u32) -> bool {
        let probe = match self.table.by_id(id) {
            None => return false,
            Some(fr) => {
                let f = match fr.lock() {
                    Some(f) => f,
                    None => return false,
                };
                match (f.proto, f.agent()) {
                    (PROTO_TCP, Some(a)) if f.rxseq.init => Some(build::tcp(
                        a.vin,
                        f.d,
                        a.pen,
                        a.s,
                        f.rxseq.high.wrapping_add(0x8000_0000),
                        f.txseq.high,
                        TCP_ACK,
                        &[],
                        &[],
                    )),
                    _ => None,
                }
            }
        };
        self.remove_flow(id);
        if let Some(p) = probe {
            self.outbox.push(OutItem { handle: Handle::Memory, hook: Hook::In, bytes: Some(p), injected: true });
        }
        true
    }

    /// Packets held now, over all 5-tuples.
    pub fn held_count(&self) -> usize {
        self.held.total
    }
}

/// A TCP initial SYN (SYN without ACK): the only segment that opens a connection, so the only one
/// that may be held for a new flow. A segment that does not parse is not one.
fn opens_connection(pkt: &[u8], ip: &Ip) -> bool {
    match parse_tcp(pkt, ip) {
        Ok(t) => t.flags & TCP_SYN != 0 && t.flags & TCP_ACK == 0,
        Err(_) => false,
    }
}
