//! TCP segmentation in user space, for GSO super-packets taken from the queue on the sending side
//! (docs/pccom.md §12, docs/performance.md). The kernel hands a queue with `NFQA_CFG_F_GSO` one
//! large TCP packet where its stack would have put 2–45 segments on the wire; PCCOM needs a MAC
//! on every segment, so the segments are cut here, each protected on its own, and sent in one
//! batched call. Portable: no OS calls, unit-tested in native/tests/gso.rs.
//!
//! What a segment gets, as the kernel's own `tcp_gso_segment` / `inet_gso_segment` do it:
//! - the IP header of the super-packet, its total length, and IP ID + i (the stack numbers the
//!   segments of one GSO packet consecutively);
//! - the TCP header and options of the super-packet, the sequence number advanced by the bytes
//!   of the segments before it; CWR only on the first segment, FIN and PSH only on the last;
//! - at most `mss` payload bytes (the last segment gets the rest: it may be shorter);
//! - full IP and TCP checksums (the super-packet's TCP checksum is only the pseudo-header's
//!   partial sum, `CHECKSUM_PARTIAL`); the TCP one optional (see `segment_tcp`).
//! URG and SYN are not segmented here (the caller falls back to the kernel's segmentation).

use crate::pkt::*;

/// Why a packet cannot be segmented here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Not an IPv4/TCP packet that parses, or an IPv4 fragment.
    NotTcp,
    /// SYN or URG set: left to the kernel.
    Flags,
    /// A segment size below 64 bytes (nothing sensible to cut).
    Mss,
}

/// The smallest segment payload `segment_tcp` accepts.
pub const MIN_MSS: usize = 64;

/// The MSS option's value on a SYN (None if it has none).
pub fn mss_option(pkt: &[u8], tcp: &Tcp) -> Option<u16> {
    let opts = &pkt[tcp.off + 20..tcp.off + tcp.hlen];
    tcp_options(opts).find(|&(_, kind, len)| kind == 2 && len == 4).map(|(i, _, _)| be16(opts, i + 2))
}

/// The segment payload size a sender's stack uses on a connection whose peer announced
/// `peer_mss` (0: none, RFC 9293's default 536) and whose path MTU it was told is `pmtu`
/// (0: not told), for a segment whose TCP header is `tcp_hlen` bytes long (timestamps, SACK
/// blocks: Linux's `tcp_current_mss` takes the options of the moment off the MSS).
pub fn segment_size(peer_mss: u16, pmtu: u16, tcp_hlen: usize) -> usize {
    let mut mss = if peer_mss == 0 { 536 } else { peer_mss as usize };
    if pmtu != 0 {
        mss = std::cmp::min(mss, (pmtu as usize).saturating_sub(40));
    }
    mss.saturating_sub(tcp_hlen.saturating_sub(20))
}

/// Cuts the IPv4/TCP packet `pkt` into segments of at most `mss` payload bytes, into `out[..n]`
/// (the vectors are reused; more are added as needed). Returns n. A packet whose payload fits in
/// one segment comes back as one segment. With `tcp_checksum` false the TCP checksum is left as
/// the super-packet's (the engine writes a full one on every segment it protects: the backend
/// saves a pass over the data); the IP header checksum is always right.
pub fn segment_tcp(pkt: &[u8], mss: usize, out: &mut Vec<Vec<u8>>, tcp_checksum: bool) -> Result<usize, GsoError> {
    let ip = parse_ip(pkt, false).map_err(|_| GsoError::NotTcp)?;
    if ip.proto != PROTO_TCP || is_fragment(pkt) {
        return Err(GsoError::NotTcp);
    }
    let tcp = parse_tcp(pkt, &ip).map_err(|_| GsoError::NotTcp)?;
    if tcp.flags & (TCP_SYN | TCP_URG) != 0 {
        return Err(GsoError::Flags);
    }
    if mss < MIN_MSS {
        return Err(GsoError::Mss);
    }
    let head = tcp.payload; // IP header + TCP header with options
    let data = &pkt[tcp.payload..tcp.end];
    let n = std::cmp::max(1, (data.len() + mss - 1) / mss);
    while out.len() < n {
        out.push(Vec::with_capacity(head + mss));
    }
    let id = be16(pkt, 4);
    for (i, seg) in out.iter_mut().take(n).enumerate() {
        let from = i * mss;
        let to = std::cmp::min(from + mss, data.len());
        seg.clear();
        seg.extend_from_slice(&pkt[..head]);
        seg.extend_from_slice(&data[from..to]);
        let total = seg.len();
        put16(seg, 2, total as u16);
        put16(seg, 4, id.wrapping_add(i as u16));
        put32(seg, ip.ihl + 4, tcp.seq.wrapping_add(from as u32));
        let mut flags = tcp.flags;
        if i > 0 {
            flags &= !TCP_CWR;
        }
        if i + 1 < n {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        seg[ip.ihl + 13] = flags;
        fix_ip_checksum(seg, ip.ihl);
        if tcp_checksum {
            fix_l4_checksum(seg, ip.ihl, total, PROTO_TCP);
        }
    }
    Ok(n)
}
