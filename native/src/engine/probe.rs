//! Probes (docs/pccom.md §6.1): packets the agent's engine makes itself on a live flow, so that
//! the gateway hears the flow from wherever the home NAT maps it now. A probe is a verifying packet
//! that no end sees: for TCP a bare ACK at the connection's current position carrying the probe
//! form of the PCCOM option (a 48-bit probe number, rising: see `next_probe_number`); for UDP an empty
//! datagram whose trailer names d = 0, under the flow's next counter. The gateway verifies it,
//! moves the binding if it came from a new source and is newer than every probe before it (a
//! replayed probe never is), and consumes it.
//!
//! The agent sends one
//! - on request (`probe`, `probe_all`): the control channel saw its public address change, so
//!   every flow's mapping may have changed too, including flows where the server speaks next;
//! - as a NAT keepalive: nothing sent on the flow for `keepalive` ms (as WireGuard's persistent
//!   keepalive), for as long as the flow is live in the engine (the application keeps it: probes
//!   do not count as the flow's traffic, so an abandoned flow still expires);
//! - on a quiet TCP flow: the flow's traffic stopped between `quiet_probe` ms and `QUIET_SPAN`
//!   ago, once per `quiet_probe` ms. A download whose home NAT lost its mapping looks exactly like
//!   this (the gateway's segments go to the old mapping and are lost, so EN has nothing to
//!   acknowledge); the probe moves the binding and IN's next retransmission gets through.

use super::flow::{End, Flow, FlowState};
use super::{Engine, Handle, Hook, OutItem, Role};
use crate::pccom::{self, TcpPos, PACKET_LIMIT};
use crate::pkt::*;

/// How long after a TCP flow's traffic stopped quiet probes go on (ms).
pub const QUIET_SPAN: u64 = 10_000;

/// Why a probe is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Keepalive,
    Quiet,
}

/// Is a probe due on this agent flow at `now`?
pub fn due(f: &Flow, now: u64, keepalive: u64, quiet: u64) -> Option<Due> {
    let a = match f.agent() {
        Some(a) if !f.compat && probe_state(f) => a,
        _ => return None,
    };
    if keepalive > 0 && now.saturating_sub(a.last_out) >= keepalive {
        return Some(Due::Keepalive);
    }
    let idle = now.saturating_sub(f.last);
    if quiet > 0 && f.proto == PROTO_TCP && idle >= quiet && idle < QUIET_SPAN && now.saturating_sub(a.last_probe) >= quiet {
        return Some(Due::Quiet);
    }
    None
}

/// A flow a probe can be made for: TCP once established (both ISNs known, not closed), UDP once
/// it has sent a datagram (the gateway knows its d).
fn probe_state(f: &Flow) -> bool {
    match f.state {
        FlowState::Established | FlowState::Closing => f.conn.probe_position().is_some(),
        FlowState::Udp => f.udp_ctr > 0 && f.d != 0,
        _ => false,
    }
}

/// Makes the flow's next probe, protected and addressed `PEN:s -> GGR:t`; None if the flow cannot
/// carry one now (see `probe_state`) or its key is exhausted.
pub fn make(f: &mut Flow, now: u64) -> Option<Vec<u8>> {
    if f.compat || !probe_state(f) || f.c.pkts_out >= PACKET_LIMIT {
        return None;
    }
    let (pen, s, ggr, probe_tx) = match &f.end {
        End::Agent(a) => (a.pen, a.s, a.ggr, a.probe_tx),
        End::Gateway(_) => return None,
    };
    let mut pkt = if f.proto == PROTO_TCP {
        let (seq, ack) = f.conn.probe_position()?;
        let mut p = build::tcp(pen, s, ggr, f.t, seq, ack, TCP_ACK, &[], &[]);
        put16(&mut p, 20 + 14, 0); // window: no end reads it
        let ip = parse_ip(&p, false).ok()?;
        let tcp = parse_tcp(&p, &ip).ok()?;
        let ext_seq = f.txseq.extend(seq);
        let ext_ack = f.rxseq.extend(ack);
        let (isn_sender, isn_receiver) = f.conn.isns_out(TCP_ACK, seq);
        let pos = TcpPos { ext_seq, ext_ack, isn_sender, isn_receiver };
        let n = next_probe_number(probe_tx);
        pccom::tcp_protect_with(&mut p, &ip, &tcp, &mut f.tx, &pos, 0, Some(n)).ok()?;
        if let End::Agent(a) = &mut f.end {
            a.probe_tx = n;
        }
        p
    } else {
        let mut p = build::udp(pen, s, ggr, f.t, &[]);
        let ip = parse_ip(&p, false).ok()?;
        let udp = parse_udp(&p, &ip).ok()?;
        pccom::udp_protect(&mut p, &ip, &udp, &mut f.tx, f.udp_ctr + 1, 0).ok()?;
        f.udp_ctr += 1;
        p
    };
    rewrite(&mut pkt, 20, f.proto, pen, s, ggr, f.t);
    f.c.pkts_out += 1;
    if let End::Agent(a) = &mut f.end {
        a.last_out = now;
        a.last_probe = now;
    }
    Some(pkt)
}

/// The next probe number: above the last one, and at least the wall clock in milliseconds, so that
/// the numbers keep rising across a restart of the agent (whose flows the gateway still holds, with
/// the highest number it accepted) without storing them. 48 bits of milliseconds last 8 900 years.
fn next_probe_number(last: u64) -> u64 {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    std::cmp::max(last + 1, wall & ((1u64 << 48) - 1))
}

impl Engine {
    /// Agent: makes flow `id` send a probe now. False if there is no such flow or it cannot carry
    /// one now (not established yet, closed, compat, gateway role).
    pub fn probe(&mut self, id: u32, now: u64) -> bool {
        if self.cfg.role != Role::Agent {
            return false;
        }
        let p = match self.table.by_id(id) {
            Some(fr) => fr.lock().and_then(|mut f| make(&mut f, now)),
            None => None,
        };
        match p {
            Some(p) => {
                self.send_probe(p);
                true
            }
            None => false,
        }
    }

    /// Agent: every live flow sends a probe now (the public address changed). Returns how many did.
    pub fn probe_all(&mut self, now: u64) -> usize {
        if self.cfg.role != Role::Agent {
            return 0;
        }
        let mut made = Vec::new();
        for i in 0..self.table.slot_count() {
            if let Some(p) = self.table.slot(i).and_then(|fr| fr.lock().and_then(|mut f| make(&mut f, now))) {
                made.push(p);
            }
        }
        let n = made.len();
        for p in made {
            self.send_probe(p);
        }
        n
    }

    pub(super) fn send_probe(&mut self, p: Vec<u8>) {
        self.stats.probes_sent += 1;
        self.outbox.push(OutItem { handle: Handle::Memory, hook: Hook::Out, bytes: Some(p), injected: true });
    }
}
