//! Packets the engine makes itself to answer an application whose held connection failed: a TCP
//! RST or an ICMP destination unreachable, addressed back to it.

use crate::pkt::*;

/// TCP RST (with ACK) answering `orig` (an outbound segment PEN:s -> VIN:d), sent VIN:d -> PEN:s.
pub fn synth_rst(orig: &[u8]) -> Option<Vec<u8>> {
    let ip = parse_ip(orig, false).ok()?;
    let tcp = parse_tcp(orig, &ip).ok()?;
    if tcp.flags & TCP_RST != 0 {
        return None;
    }
    let mut seg_len = (tcp.end - tcp.payload) as u32;
    if tcp.flags & TCP_SYN != 0 {
        seg_len += 1;
    }
    if tcp.flags & TCP_FIN != 0 {
        seg_len += 1;
    }
    let mut b = vec![0u8; 40];
    b[0] = 0x45;
    put16(&mut b, 2, 40);
    b[6] = 0x40;
    b[8] = 64;
    b[9] = PROTO_TCP;
    put32(&mut b, 12, ip.dst);
    put32(&mut b, 16, ip.src);
    put16(&mut b, 20, tcp.dport);
    put16(&mut b, 22, tcp.sport);
    let (seq, flags) = if tcp.flags & TCP_ACK != 0 { (tcp.ack, TCP_RST) } else { (0, TCP_RST | TCP_ACK) };
    put32(&mut b, 24, seq);
    put32(&mut b, 28, tcp.seq.wrapping_add(seg_len));
    b[32] = 5 << 4;
    b[33] = flags;
    fix_ip_checksum(&mut b, 20);
    fix_l4_checksum(&mut b, 20, 40, PROTO_TCP);
    Some(b)
}

/// ICMP destination unreachable (code 3 port, 13 administratively prohibited) answering `orig`.
pub fn synth_icmp_unreach(orig: &[u8], code: u8) -> Option<Vec<u8>> {
    let ip = parse_ip(orig, false).ok()?;
    let quote = std::cmp::min(ip.total, ip.ihl + 8);
    let total = 20 + 8 + quote;
    let mut b = vec![0u8; total];
    b[0] = 0x45;
    put16(&mut b, 2, total as u16);
    b[8] = 64;
    b[9] = PROTO_ICMP;
    put32(&mut b, 12, ip.dst);
    put32(&mut b, 16, ip.src);
    b[20] = 3;
    b[21] = code;
    b[28..].copy_from_slice(&orig[..quote]);
    fix_ip_checksum(&mut b, 20);
    fix_l4_checksum(&mut b, 20, total, PROTO_ICMP);
    Some(b)
}
