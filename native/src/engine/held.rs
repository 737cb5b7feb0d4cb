//! Held packets (agent): the first packets of a 5-tuple into the VIN range wait here, never
//! dropped and never passed untranslated, while TypeScript negotiates. `add_flow` releases them
//! translated (table.rs); `fail_held` drops them and answers the application; expiry drops them
//! after `heldMs` (expiry.rs). Bounded per 5-tuple and in total.

use super::synth::{synth_icmp_unreach, synth_rst};
use super::{Engine, Event, Handle, Hook, Key5, OutItem, Reason, Verdict};
use crate::pkt::{Ip, PROTO_TCP};
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

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

impl Engine {
    /// Holds an outbound packet of a 5-tuple without a VAT entry; the first one is reported
    /// (event `held`).
    pub(super) fn hold(&mut self, key: Key5, pkt: &mut Vec<u8>, ip: &Ip, handle: Handle, now: u64) -> Verdict {
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

    /// Packets held now, over all 5-tuples.
    pub fn held_count(&self) -> usize {
        self.held.total
    }
}
