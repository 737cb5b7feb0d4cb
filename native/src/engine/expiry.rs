//! Expiry: flows time out by state (TCP handshake, established, closing and closed; UDP idle;
//! unbound reservation); held and punted packets after `heldMs`. The agent's probes that are due
//! (NAT keepalive, quiet flows: probe.rs) leave from the same pass. The same pass reports
//! verification failures still pending after their one-second rate limit (flow.rs), so a trailing
//! burst is reported too. Incremental: each call looks at a
//! bounded number of flow slots, so it never stalls the data path. Backends call it after every
//! batch and when idle.

use super::flow::FlowState;
use super::probe;
use super::{Engine, Event, Hook, OutItem, Reason};

#[derive(Default)]
pub(super) struct Sweep {
    /// The next flow slot to look at.
    pos: usize,
    /// When held packets and punts were last checked.
    last: u64,
}

impl Engine {
    /// Expires what timed out by `now`, looking at up to `budget` flow slots.
    pub fn sweep(&mut self, now: u64, budget: usize) {
        if self.table.slot_count() == 0 && self.held.is_empty() && self.punts.is_empty() {
            return;
        }
        let to = self.cfg.timeouts.clone();
        let n = self.table.slot_count();
        let mut expired: Vec<Event> = Vec::new();
        let mut reports = Vec::new();
        let mut probes = Vec::new();
        for _ in 0..std::cmp::min(budget, n) {
            if self.sweep.pos >= n {
                self.sweep.pos = 0;
            }
            let fr = self.table.slot(self.sweep.pos);
            if let Some(mut f) = fr.as_ref().and_then(|fr| fr.lock()) {
                if let Some(r) = f.verify_report_due(now) {
                    reports.push((f.proto, r));
                }
                let limit = match f.state {
                    FlowState::Reserved => to.reservation,
                    FlowState::Handshake => to.tcp_handshake,
                    FlowState::Established => to.tcp_established,
                    // closed (both FINs acknowledged, or a RST): only a last ACK may come; its
                    // port goes back soon
                    FlowState::Closed => to.tcp_closed,
                    FlowState::Closing => to.tcp_closing,
                    FlowState::Udp => to.udp_idle,
                };
                if now.saturating_sub(f.last) >= limit {
                    expired.push(Event::Expired { id: f.id, proto: f.proto, t: f.t, state: f.state.as_str(), close: f.close_signal().as_str(), c: f.counters() });
                } else if probe::due(&f, now, to.keepalive, to.quiet_probe).is_some() {
                    if let Some(p) = probe::make(&mut f, now) {
                        probes.push(p);
                    }
                }
            }
            self.sweep.pos += 1;
        }
        for p in probes {
            self.send_probe(p);
        }
        for (proto, r) in reports {
            self.event(Event::VerifyFailed { id: Some(r.id), proto, src: r.src, sport: r.sport, dport: r.dport, reason: r.reason, count: r.count });
        }
        for e in expired {
            if let Event::Expired { id, .. } = e {
                self.remove_flow(id);
            }
            self.stats.expired += 1;
            self.event(e);
        }
        // Held packets and punts: small, bounded maps; checked at most every 100 ms.
        if now.saturating_sub(self.sweep.last) >= 100 {
            self.sweep.last = now;
            for (k, pkts) in self.held.take_expired(now, to.held) {
                let count = pkts.len() as u32;
                self.stats.held_expired += pkts.len() as u64;
                for _ in 0..pkts.len() {
                    self.stats.count_drop(Reason::HeldExpired);
                }
                for (_, h) in pkts {
                    self.outbox.push(OutItem { handle: h, hook: Hook::Out, bytes: None, injected: false });
                }
                self.event(Event::HeldExpired { proto: k.0, src: k.1, sport: k.2, dst: k.3, dport: k.4, count });
            }
            let drops = self.punts.take_expired(now, to.held);
            self.stats.punt_expired += drops.len() as u64;
            for _ in 0..drops.len() {
                self.stats.count_drop(Reason::PuntExpired);
            }
            self.outbox.extend(drops);
        }
    }
}
