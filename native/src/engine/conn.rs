//! The TCP connection a flow carries — exactly one: a reservation (gateway) or a VAT entry (agent)
//! serves one connection, and a SYN with another initial sequence number is refused (the agent
//! negotiates fresh keys for it instead). Here: the connection's ISNs (both go into every MAC), its
//! state machine (it only moves forward), the acknowledged points of both ends, and the rules that
//! keep a replayed packet from delivering anything twice (docs/pccom.md §4.4):
//!
//! - an initial SYN for an established or closing connection is refused (`syn-replay`);
//! - after the connection closed (both FINs acknowledged, or a RST), nothing from the internet
//!   passes (`closed`);
//! - a segment whose data (and SYN/FIN) the receiving end has already acknowledged passes with its
//!   payload, SYN and FIN removed (`old-data`): a replay delivers nothing, and a genuine
//!   retransmission (its acknowledgment was lost) still makes the receiving TCP acknowledge again,
//!   because a bare segment below its window is answered with an ACK (RFC 9293 §3.10.7.4). This
//!   holds in both directions: toward the local end for what arrives from the internet, toward the
//!   remote end for what the local end retransmits (so old positions are never encrypted again).
//!
//! "Local end" = the TCP on the protected side (the application on EN at the agent, IN at the
//! gateway); "remote end" = the one across the internet. All numbers are 64-bit extended
//! (pccom::SeqTrack) and, at the gateway, as they are on the wire (after an ALG's adjustment).

use super::flow::FlowState;
use super::Reason;
use crate::pkt::*;

/// One TCP segment, with its sequence and acknowledgment numbers extended to 64 bits.
#[derive(Debug, Clone, Copy)]
pub struct Seg {
    pub flags: u8,
    pub seq: u32,
    pub ext_seq: u64,
    /// 0 when ACK is clear.
    pub ext_ack: u64,
    pub len: u32,
}

impl Seg {
    /// The sequence number after this segment (a SYN and a FIN occupy one each).
    pub fn end(&self) -> u64 {
        self.ext_seq + self.len as u64 + (self.flags & TCP_SYN != 0) as u64 + (self.flags & TCP_FIN != 0) as u64
    }

    pub fn initial_syn(&self) -> bool {
        self.flags & TCP_SYN != 0 && self.flags & TCP_ACK == 0
    }

    /// Does it occupy sequence space (data, SYN or FIN)?
    fn occupies(&self) -> bool {
        self.len > 0 || self.flags & (TCP_SYN | TCP_FIN) != 0
    }
}

/// What may pass of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Whole,
    /// Only the bare header: payload, SYN and FIN removed (see the module comment).
    Bare,
}

/// An optional 64-bit position in 8 bytes: `u64::MAX` stands for none (an extended sequence
/// number gets there only after 2^64 bytes). Six of them make the half of a `Conn` that six
/// `Option<u64>` (16 bytes each) made twice as large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos(u64);

impl Default for Pos {
    fn default() -> Pos {
        Pos::NONE
    }
}

impl Pos {
    const NONE: Pos = Pos(u64::MAX);

    pub(super) fn get(self) -> Option<u64> {
        if self == Pos::NONE {
            None
        } else {
            Some(self.0)
        }
    }

    /// Some(v) for v below `u64::MAX`; a snapshot that holds `u64::MAX` is refused.
    fn from_opt(v: Option<u64>) -> Result<Pos, String> {
        match v {
            None => Ok(Pos::NONE),
            Some(u64::MAX) => Err("flow snapshot: a sequence position out of range".into()),
            Some(v) => Ok(Pos(v)),
        }
    }

    /// Raises it to `v` (or sets it, if none).
    fn raise(&mut self, v: u64) {
        self.0 = match self.get() {
            Some(a) => a.max(v),
            None => v,
        };
    }

    fn set_once(&mut self, v: u64) {
        if self.get().is_none() {
            self.0 = v;
        }
    }
}

/// `Conn::known`'s bits.
const ISN_LOCAL: u8 = 1;
const ISN_REMOTE: u8 = 2;
const RST: u8 = 4;

/// 64 bytes (six positions, two ISNs, one byte of flags): it sits in every flow.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conn {
    /// The ISNs, each valid only with its bit in `known`.
    isn_local: u32,
    isn_remote: u32,
    /// The highest acknowledgment the local end sent (what it has of the remote's stream), never
    /// above what the remote actually sent (`remote_end`).
    pub(super) local_ack: Pos,
    /// The highest acknowledgment verified from the remote end.
    pub(super) remote_ack: Pos,
    /// The highest sequence end the local end sent / the remote end sent (verified).
    pub(super) local_end: Pos,
    pub(super) remote_end: Pos,
    /// Where each end's FIN sits.
    pub(super) fin_local: Pos,
    pub(super) fin_remote: Pos,
    /// ISN_LOCAL, ISN_REMOTE: that ISN is known; RST: a RST passed (either way), the audit's close
    /// reason (flow::Close).
    known: u8,
}

/// What a snapshot keeps of a connection (snapshot.rs): the ISNs, the six positions (local_ack,
/// remote_ack, local_end, remote_end, fin_local, fin_remote) and whether a RST passed.
pub struct ConnParts {
    pub isn_local: Option<u32>,
    pub isn_remote: Option<u32>,
    pub pos: [Option<u64>; 6],
    pub rst: bool,
}

/// The ISNs a segment's MAC covers, (sender's, receiver's): on a SYN the sender's is the
/// segment's own sequence number; on an initial SYN the receiver's is 0 (as TCP-AO, RFC 5925
/// §5.2); an ISN not yet known is 0.
fn isns(flags: u8, seq: u32, sender: Option<u32>, receiver: Option<u32>) -> (u32, u32) {
    let s = if flags & TCP_SYN != 0 { seq } else { sender.unwrap_or(0) };
    let r = if flags & TCP_SYN != 0 && flags & TCP_ACK == 0 { 0 } else { receiver.unwrap_or(0) };
    (s, r)
}

impl Conn {
    pub fn isn_local(&self) -> Option<u32> {
        if self.known & ISN_LOCAL != 0 {
            Some(self.isn_local)
        } else {
            None
        }
    }

    pub fn isn_remote(&self) -> Option<u32> {
        if self.known & ISN_REMOTE != 0 {
            Some(self.isn_remote)
        } else {
            None
        }
    }

    fn set_isn_local(&mut self, isn: u32) {
        self.isn_local = isn;
        self.known |= ISN_LOCAL;
    }

    fn set_isn_remote(&mut self, isn: u32) {
        self.isn_remote = isn;
        self.known |= ISN_REMOTE;
    }

    pub fn parts(&self) -> ConnParts {
        let p = [self.local_ack, self.remote_ack, self.local_end, self.remote_end, self.fin_local, self.fin_remote];
        ConnParts { isn_local: self.isn_local(), isn_remote: self.isn_remote(), pos: p.map(Pos::get), rst: self.rst_seen() }
    }

    pub fn from_parts(c: &ConnParts) -> Result<Conn, String> {
        let mut conn = Conn::default();
        if let Some(i) = c.isn_local {
            conn.set_isn_local(i);
        }
        if let Some(i) = c.isn_remote {
            conn.set_isn_remote(i);
        }
        let mut p = [Pos::NONE; 6];
        for (x, v) in p.iter_mut().zip(c.pos.iter()) {
            *x = Pos::from_opt(*v)?;
        }
        [conn.local_ack, conn.remote_ack, conn.local_end, conn.remote_end, conn.fin_local, conn.fin_remote] = p;
        if c.rst {
            conn.known |= RST;
        }
        Ok(conn)
    }

    /// ISNs for a segment the local end sends.
    pub fn isns_out(&self, flags: u8, seq: u32) -> (u32, u32) {
        isns(flags, seq, self.isn_local(), self.isn_remote())
    }

    /// ISNs for a segment from the remote end.
    pub fn isns_in(&self, flags: u8, seq: u32) -> (u32, u32) {
        isns(flags, seq, self.isn_remote(), self.isn_local())
    }

    /// Before any crypto: may a segment from the internet be looked at at all?
    pub fn admit_in(&self, state: FlowState, flags: u8, seq: u32) -> Result<(), Reason> {
        if state == FlowState::Closed {
            return Err(Reason::Closed);
        }
        if flags & TCP_SYN != 0 {
            if flags & TCP_ACK == 0 && (state == FlowState::Established || state == FlowState::Closing) {
                return Err(Reason::SynReplay);
            }
            if self.isn_remote().map_or(false, |isn| isn != seq) {
                return Err(Reason::NewConnection);
            }
        }
        Ok(())
    }

    /// Before protection: may a segment the local end sends go? (A new connection on an agent's
    /// 5-tuple never gets here: it is held for fresh keys.)
    pub fn admit_out(&self, state: FlowState, flags: u8, seq: u32) -> Result<(), Reason> {
        if flags & TCP_SYN != 0 {
            if state == FlowState::Closed {
                return Err(Reason::Closed);
            }
            if self.isn_local().map_or(false, |isn| isn != seq) {
                return Err(Reason::NewConnection);
            }
        }
        Ok(())
    }

    /// After verification: what of a segment from the remote end reaches the local end. An
    /// initial SYN during the handshake passes whole (the local end answers a retransmitted SYN
    /// with its SYN-ACK again); a RST passes whole (after it the connection is closed).
    pub fn pass_in(&self, s: &Seg) -> Pass {
        if s.initial_syn() || s.flags & TCP_RST != 0 || !s.occupies() {
            return Pass::Whole;
        }
        match self.local_ack.get() {
            Some(a) if s.end() <= a => Pass::Bare,
            _ => Pass::Whole,
        }
    }

    /// Before protection: what of a segment the local end sends goes to the remote end (the same
    /// rule with the remote end's verified acknowledgment).
    pub fn pass_out(&self, s: &Seg) -> Pass {
        if s.initial_syn() || s.flags & TCP_RST != 0 || !s.occupies() {
            return Pass::Whole;
        }
        match self.remote_ack.get() {
            Some(a) if s.end() <= a => Pass::Bare,
            _ => Pass::Whole,
        }
    }

    /// Roaming (docs/pccom.md §6.1): is a segment from the remote end newer than anything verified
    /// from it — an acknowledgment above the highest one, or data (or a FIN) beyond the highest
    /// end? A replay never is: it repeats a segment that was accepted, or one older. SYNs and
    /// RSTs never move a binding.
    pub fn newer_in(&self, s: &Seg) -> bool {
        if s.flags & (TCP_SYN | TCP_RST) != 0 {
            return false;
        }
        let ack = s.flags & TCP_ACK != 0 && self.remote_ack.get().map_or(false, |a| s.ext_ack > a);
        let data = s.occupies() && self.remote_end.get().map_or(false, |e| s.end() > e);
        ack || data
    }

    /// Where a probe sits (docs/pccom.md §6.1): (seq, ack) of a bare ACK at the local end's next
    /// sequence number, acknowledging what the local end acknowledged; None until both ISNs are
    /// known and the local end has sent and acknowledged something.
    pub fn probe_position(&self) -> Option<(u32, u32)> {
        self.isn_local()?;
        self.isn_remote()?;
        let ack = self.local_ack.get().or(self.remote_end.get())?;
        Some((self.local_end.get()? as u32, ack as u32))
    }

    /// Records a verified segment from the remote end (as it passed) and moves the state.
    pub fn record_in(&mut self, state: &mut FlowState, s: &Seg) {
        if s.flags & TCP_SYN != 0 && self.isn_remote().is_none() {
            self.set_isn_remote(s.seq);
        }
        self.remote_end.raise(s.end());
        if s.flags & TCP_ACK != 0 {
            self.remote_ack.raise(s.ext_ack);
        }
        if s.flags & TCP_FIN != 0 {
            self.fin_remote.set_once(s.end() - 1);
        }
        self.advance(state, s.flags);
    }

    /// Records a segment the local end sent (as it was protected) and moves the state.
    pub fn record_out(&mut self, state: &mut FlowState, s: &Seg) {
        if s.flags & TCP_SYN != 0 && self.isn_local().is_none() {
            self.set_isn_local(s.seq);
        }
        self.local_end.raise(s.end());
        if s.flags & TCP_ACK != 0 {
            // Never more than the remote sent: an acknowledgment of unsent data proves nothing.
            let a = std::cmp::min(s.ext_ack, self.remote_end.get().unwrap_or(0));
            self.local_ack.raise(a);
        }
        if s.flags & TCP_FIN != 0 {
            self.fin_local.set_once(s.end() - 1);
        }
        self.advance(state, s.flags);
    }

    /// Reserved -> Handshake -> Established -> Closing -> Closed, never back.
    fn advance(&mut self, state: &mut FlowState, flags: u8) {
        if flags & TCP_RST != 0 {
            self.known |= RST;
            *state = FlowState::Closed;
            return;
        }
        if *state == FlowState::Reserved && flags & TCP_SYN != 0 {
            *state = FlowState::Handshake;
        }
        if *state == FlowState::Handshake && self.isn_local().is_some() && self.isn_remote().is_some() && flags & (TCP_SYN | TCP_ACK) == TCP_ACK {
            *state = FlowState::Established;
        }
        if (*state == FlowState::Handshake || *state == FlowState::Established) && self.fin_seen() {
            *state = FlowState::Closing;
        }
        if *state == FlowState::Closing && self.fin_acked() {
            *state = FlowState::Closed;
        }
    }

    /// Did either end send a FIN / a RST (that passed)?
    pub fn fin_seen(&self) -> bool {
        self.fin_local.get().is_some() || self.fin_remote.get().is_some()
    }
    pub fn rst_seen(&self) -> bool {
        self.known & RST != 0
    }

    /// Both FINs sent and acknowledged by the other end.
    fn fin_acked(&self) -> bool {
        match (self.fin_local.get(), self.fin_remote.get(), self.remote_ack.get(), self.local_ack.get()) {
            (Some(fl), Some(fr), Some(ra), Some(la)) => ra > fl && la > fr,
            _ => false,
        }
    }

    /// ICMP about a segment this engine sent toward the remote end: does its (extended) sequence
    /// number lie in the send window, between the remote's acknowledgment and what was sent
    /// (RFC 5927 §4.1)?
    pub fn in_send_window(&self, ext_seq: u64) -> bool {
        match (self.isn_local(), self.local_end.get()) {
            (Some(isn), Some(end)) => self.remote_ack.get().unwrap_or(isn as u64) <= ext_seq && ext_seq <= end,
            _ => false,
        }
    }

    /// ICMP about a segment this engine delivered to the local end: the same, in the remote's
    /// stream (between the local end's acknowledgment and what the remote sent).
    pub fn in_delivered_window(&self, ext_seq: u64) -> bool {
        match (self.isn_remote(), self.remote_end.get()) {
            (Some(isn), Some(end)) => self.local_ack.get().unwrap_or(isn as u64) <= ext_seq && ext_seq <= end,
            _ => false,
        }
    }
}

/// Reduces a plaintext TCP segment to its bare header (Pass::Bare): the payload goes, and SYN,
/// FIN, PSH and URG (with the urgent pointer) are cleared. Checksums are left to the caller, which
/// rewrites the packet anyway.
pub fn make_bare(pkt: &mut Vec<u8>, tcp: &Tcp) {
    pkt.truncate(tcp.payload);
    let total = pkt.len() as u16;
    put16(pkt, 2, total);
    pkt[tcp.off + 13] &= !(TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG);
    put16(pkt, tcp.off + 18, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u64, ack: u64, len: u32) -> Seg {
        Seg { flags, seq: seq as u32, ext_seq: seq, ext_ack: ack, len }
    }

    /// A connection after the handshake: local ISN 100, remote ISN 5000.
    fn established() -> (Conn, FlowState) {
        let mut c = Conn::default();
        let mut st = FlowState::Reserved;
        c.record_in(&mut st, &seg(TCP_SYN, 5000, 0, 0));
        c.record_out(&mut st, &seg(TCP_SYN | TCP_ACK, 100, 5001, 0));
        c.record_in(&mut st, &seg(TCP_ACK, 5001, 101, 0));
        assert_eq!(st, FlowState::Established);
        (c, st)
    }

    #[test]
    fn data_the_local_end_acknowledged_passes_bare_and_new_data_whole() {
        let (mut c, mut st) = established();
        let d = seg(TCP_ACK | TCP_PSH, 5001, 101, 100);
        assert_eq!(c.pass_in(&d), Pass::Whole);
        c.record_in(&mut st, &d);
        c.record_out(&mut st, &seg(TCP_ACK, 101, 5101, 0));
        assert_eq!(c.pass_in(&d), Pass::Bare);
        // Partly new: whole (the receiving TCP trims it).
        assert_eq!(c.pass_in(&seg(TCP_ACK, 5051, 101, 100)), Pass::Whole);
        // A bare ACK always passes.
        assert_eq!(c.pass_in(&seg(TCP_ACK, 5001, 101, 0)), Pass::Whole);
    }

    #[test]
    fn the_local_ack_never_exceeds_what_the_remote_sent() {
        let (mut c, mut st) = established();
        c.record_out(&mut st, &seg(TCP_ACK, 101, 9_000_000, 0));
        assert_eq!(c.pass_in(&seg(TCP_ACK, 5001, 101, 100)), Pass::Whole);
    }

    #[test]
    fn a_syn_for_an_established_connection_or_with_another_isn_is_refused() {
        let (c, st) = established();
        assert_eq!(c.admit_in(st, TCP_SYN, 5000), Err(Reason::SynReplay));
        assert_eq!(c.admit_in(FlowState::Handshake, TCP_SYN, 5000), Ok(()));
        assert_eq!(c.admit_in(FlowState::Handshake, TCP_SYN, 7), Err(Reason::NewConnection));
        assert_eq!(c.admit_out(st, TCP_SYN | TCP_ACK, 99), Err(Reason::NewConnection));
    }

    #[test]
    fn the_state_closes_after_both_fins_are_acknowledged_and_never_goes_back() {
        let (mut c, mut st) = established();
        c.record_out(&mut st, &seg(TCP_ACK | TCP_FIN, 101, 5001, 0));
        assert_eq!(st, FlowState::Closing);
        c.record_in(&mut st, &seg(TCP_ACK | TCP_FIN, 5001, 102, 0));
        assert_eq!(st, FlowState::Closing);
        c.record_out(&mut st, &seg(TCP_ACK, 102, 5002, 0));
        assert_eq!(st, FlowState::Closed);
        assert_eq!(c.admit_in(st, TCP_SYN, 5000), Err(Reason::Closed));
        assert_eq!(c.admit_in(st, TCP_ACK, 5002), Err(Reason::Closed));
        c.record_in(&mut st, &seg(TCP_SYN, 5000, 0, 0));
        assert_eq!(st, FlowState::Closed);
    }

    #[test]
    fn a_rst_closes_at_once() {
        let (mut c, mut st) = established();
        c.record_in(&mut st, &seg(TCP_RST | TCP_ACK, 5001, 101, 0));
        assert_eq!(st, FlowState::Closed);
    }

    #[test]
    fn a_connection_takes_64_bytes_and_keeps_what_it_learned() {
        assert!(std::mem::size_of::<Conn>() <= 64, "{}", std::mem::size_of::<Conn>());
        let (c, _) = established();
        let p = c.parts();
        assert_eq!((p.isn_local, p.isn_remote), (Some(100), Some(5000)));
        let back = Conn::from_parts(&p).unwrap();
        assert_eq!((back.isn_local(), back.isn_remote(), back.parts().pos), (Some(100), Some(5000), p.pos));
        assert_eq!(Conn::default().parts().pos, [None; 6]);
        let bad = ConnParts { pos: [Some(u64::MAX), None, None, None, None, None], ..p };
        assert!(Conn::from_parts(&bad).is_err());
    }

    #[test]
    fn isns_follow_tcp_ao() {
        let (c, _) = established();
        assert_eq!(c.isns_in(TCP_SYN, 5000), (5000, 0));
        assert_eq!(c.isns_out(TCP_SYN | TCP_ACK, 100), (100, 5000));
        assert_eq!(c.isns_in(TCP_ACK, 5001), (5000, 100));
        assert_eq!(Conn::default().isns_out(TCP_ACK, 1), (0, 0));
    }

    #[test]
    fn icmp_windows_span_the_unacknowledged_data() {
        let (mut c, mut st) = established();
        c.record_out(&mut st, &seg(TCP_ACK, 101, 5001, 1000));
        assert!(c.in_send_window(101) && c.in_send_window(600) && c.in_send_window(1101));
        assert!(!c.in_send_window(1102) && !c.in_send_window(50));
        c.record_in(&mut st, &seg(TCP_ACK, 5001, 601, 0));
        assert!(!c.in_send_window(300) && c.in_send_window(601));
        assert!(c.in_delivered_window(5001) && !c.in_delivered_window(5002));
    }
}
