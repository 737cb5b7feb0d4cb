//! TCP sequence adjustment after an ALG changed a segment's payload length (the gateway's FTP
//! ALG rewrites `227 (PIN,A,B)` to `(VIN,A,B)`, which is usually longer).
//!
//! One direction's byte stream grew or shrank by `delta` at the segment starting at `pos`:
//! from then on that direction's sequence numbers are shifted by the accumulated delta, and the
//! other direction's acknowledgments (and SACK blocks) are shifted back. The model is the one
//! Linux conntrack uses (`nf_ct_seqadj`): the latest rewrite position and the offsets before and
//! after it, so a retransmission of an older segment gets the offset that applied to it, as long
//! as only the latest rewrite is still in flight. The adjustment runs on the plaintext side
//! (after verification inbound, before protection outbound), so the wire, its keystream
//! positions and its MACs all use the adjusted numbers consistently.

use crate::pkt::*;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqAdj {
    pub active: bool,
    /// Sequence number of the (original) segment whose length changed last.
    pub pos: u32,
    /// Offset for segments at or before `pos`, and for those after it.
    pub before: i32,
    pub after: i32,
}

/// RFC 1982 style: is `a` after `b` in sequence space?
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl SeqAdj {
    /// Records that the segment starting at original sequence `seq` changed length by `delta`.
    /// A retransmission of the latest rewritten segment (same `seq`) changes nothing.
    pub fn record(&mut self, seq: u32, delta: i32) {
        if delta == 0 {
            return;
        }
        if !self.active || seq_after(seq, self.pos) {
            self.before = self.after;
            self.after = self.after.wrapping_add(delta);
            self.pos = seq;
            self.active = true;
        }
    }

    /// The offset to add to an original sequence number of this direction.
    pub fn seq_offset(&self, seq: u32) -> i32 {
        if !self.active {
            0
        } else if seq_after(seq, self.pos) {
            self.after
        } else {
            self.before
        }
    }

    /// The offset to subtract from an acknowledgment (or SACK edge) the peer sent for this
    /// direction, which is in adjusted numbers.
    pub fn ack_offset(&self, ack: u32) -> i32 {
        if !self.active {
            0
        } else if seq_after(ack.wrapping_sub(self.before as u32), self.pos) {
            self.after
        } else {
            self.before
        }
    }

    /// Shifts the sequence number of a TCP segment of the adjusted direction. The L4 checksum
    /// is left for the caller to recompute (the data path always writes a full one).
    pub fn shift_seq(&self, pkt: &mut [u8], ip: &Ip) {
        if !self.active || pkt.len() < ip.ihl + 8 {
            return;
        }
        let seq = be32(pkt, ip.ihl + 4);
        put32(pkt, ip.ihl + 4, seq.wrapping_add(self.seq_offset(seq) as u32));
    }

    /// Shifts the acknowledgment number and SACK blocks of a TCP segment of the other direction
    /// back into original numbers.
    pub fn unshift_ack(&self, pkt: &mut [u8], ip: &Ip) {
        if !self.active {
            return;
        }
        let tcp = match parse_tcp(pkt, ip) {
            Ok(t) => t,
            Err(_) => return,
        };
        if tcp.flags & TCP_ACK != 0 {
            let a = tcp.ack;
            put32(pkt, tcp.off + 8, a.wrapping_sub(self.ack_offset(a) as u32));
        }
        let area = tcp.off + 20..tcp.off + tcp.hlen;
        let sacks: Vec<(usize, usize)> = tcp_options(&pkt[area.clone()]).filter(|&(_, k, l)| k == 5 && l >= 2).map(|(i, _, l)| (area.start + i, l)).collect();
        for (at, l) in sacks {
            let mut e = at + 2;
            while e + 4 <= at + l {
                let v = be32(pkt, e);
                put32(pkt, e, v.wrapping_sub(self.ack_offset(v) as u32));
                e += 4;
            }
        }
    }
}
