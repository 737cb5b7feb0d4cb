//! IPv4 / TCP / UDP / ICMP parsing and checksums. Every length, offset and option is validated
//! before use; parsers return `Err(Malformed)` and never index out of bounds.

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Short,
    Version,
    HeaderLength,
    TotalLength,
    IpOptions,
    IpChecksum,
    Fragment,
    L4Length,
    TcpOptions,
    Protocol,
}

impl Malformed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Malformed::Short => "short",
            Malformed::Version => "version",
            Malformed::HeaderLength => "header-length",
            Malformed::TotalLength => "total-length",
            Malformed::IpOptions => "ip-options",
            Malformed::IpChecksum => "ip-checksum",
            Malformed::Fragment => "fragment",
            Malformed::L4Length => "l4-length",
            Malformed::TcpOptions => "tcp-options",
            Malformed::Protocol => "protocol",
        }
    }
}

#[inline]
pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
#[inline]
pub fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
#[inline]
pub fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// A validated IPv4 packet. All offsets are into the buffer that was parsed and were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    pub ihl: usize,
    pub total: usize,
    pub proto: u8,
    pub src: u32,
    pub dst: u32,
}

/// Parses the IPv4 header. `allow_truncated` is for packets quoted inside ICMP errors, whose
/// total length may exceed the bytes actually present.
pub fn parse_ip(b: &[u8], allow_truncated: bool) -> Result<Ip, Malformed> {
    if b.len() < 20 {
        return Err(Malformed::Short);
    }
    if b[0] >> 4 != 4 {
        return Err(Malformed::Version);
    }
    let ihl = ((b[0] & 0x0f) as usize) * 4;
    if ihl < 20 || ihl > b.len() {
        return Err(Malformed::HeaderLength);
    }
    let total = be16(b, 2) as usize;
    if total < ihl {
        return Err(Malformed::TotalLength);
    }
    let total = if total > b.len() {
        if allow_truncated {
            b.len()
        } else {
            return Err(Malformed::TotalLength);
        }
    } else {
        total
    };
    // IP options: walk and validate.
    let mut i = 20;
    while i < ihl {
        let kind = b[i];
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        if i + 1 >= ihl {
            return Err(Malformed::IpOptions);
        }
        let l = b[i + 1] as usize;
        if l < 2 || i + l > ihl {
            return Err(Malformed::IpOptions);
        }
        i += l;
    }
    if !allow_truncated && checksum(&b[..ihl], 0) != 0 {
        return Err(Malformed::IpChecksum);
    }
    Ok(Ip { ihl, total, proto: b[9], src: be32(b, 12), dst: be32(b, 16) })
}

#[inline]
pub fn is_fragment(b: &[u8]) -> bool {
    // MF set or non-zero offset (caller has validated len >= 20).
    be16(b, 6) & 0x3fff != 0
}

/// Validated TCP header: offsets relative to the start of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub off: usize,
    pub hlen: usize,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: usize,
    pub end: usize,
}

pub fn parse_tcp(b: &[u8], ip: &Ip) -> Result<Tcp, Malformed> {
    let off = ip.ihl;
    let end = ip.total;
    if end < off + 20 || end > b.len() {
        return Err(Malformed::L4Length);
    }
    let hlen = ((b[off + 12] >> 4) as usize) * 4;
    if hlen < 20 || off + hlen > end {
        return Err(Malformed::L4Length);
    }
    validate_tcp_options(&b[off + 20..off + hlen])?;
    Ok(Tcp {
        off,
        hlen,
        sport: be16(b, off),
        dport: be16(b, off + 2),
        seq: be32(b, off + 4),
        ack: be32(b, off + 8),
        flags: b[off + 13],
        payload: off + hlen,
        end,
    })
}

/// Walks a TCP option area. Returns Err on any option that runs past the area or has a bad length.
pub fn validate_tcp_options(o: &[u8]) -> Result<(), Malformed> {
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => return Ok(()),
            1 => i += 1,
            _ => {
                if i + 1 >= o.len() {
                    return Err(Malformed::TcpOptions);
                }
                let l = o[i + 1] as usize;
                if l < 2 || i + l > o.len() {
                    return Err(Malformed::TcpOptions);
                }
                i += l;
            }
        }
    }
    Ok(())
}

/// Iterates over TCP options as (offset within area, kind, total length). Stops at EOL.
/// The area must have passed `validate_tcp_options`.
pub fn tcp_options(o: &[u8]) -> TcpOptIter<'_> {
    TcpOptIter { o, i: 0 }
}

pub struct TcpOptIter<'a> {
    o: &'a [u8],
    i: usize,
}

impl<'a> Iterator for TcpOptIter<'a> {
    type Item = (usize, u8, usize);
    fn next(&mut self) -> Option<(usize, u8, usize)> {
        if self.i >= self.o.len() {
            return None;
        }
        let i = self.i;
        let k = self.o[i];
        if k == 0 {
            self.i = self.o.len();
            return None;
        }
        if k == 1 {
            self.i += 1;
            return Some((i, 1, 1));
        }
        if i + 1 >= self.o.len() {
            self.i = self.o.len();
            return None;
        }
        let l = self.o[i + 1] as usize;
        if l < 2 || i + l > self.o.len() {
            self.i = self.o.len();
            return None;
        }
        self.i += l;
        Some((i, k, l))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub off: usize,
    pub sport: u16,
    pub dport: u16,
    pub payload: usize,
    pub end: usize,
}

pub fn parse_udp(b: &[u8], ip: &Ip) -> Result<Udp, Malformed> {
    let off = ip.ihl;
    if ip.total < off + 8 || ip.total > b.len() {
        return Err(Malformed::L4Length);
    }
    let ulen = be16(b, off + 4) as usize;
    if ulen < 8 || off + ulen != ip.total {
        return Err(Malformed::L4Length);
    }
    Ok(Udp { off, sport: be16(b, off), dport: be16(b, off + 2), payload: off + 8, end: ip.total })
}

/// An ICMP error (types 3, 4, 11, 12) with the quoted IPv4 header and its first 8 L4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpErr {
    pub off: usize,
    pub typ: u8,
    pub code: u8,
    /// Offset of the quoted IPv4 header.
    pub inner: usize,
    pub inner_ip: Ip,
    pub inner_sport: u16,
    pub inner_dport: u16,
    /// The quoted TCP sequence number (for UDP: the length and checksum words).
    pub inner_seq: u32,
}

pub fn is_icmp_error(t: u8) -> bool {
    t == 3 || t == 4 || t == 11 || t == 12
}

pub fn parse_icmp_error(b: &[u8], ip: &Ip) -> Result<Option<IcmpErr>, Malformed> {
    let off = ip.ihl;
    if ip.total < off + 8 || ip.total > b.len() {
        return Err(Malformed::L4Length);
    }
    let typ = b[off];
    if !is_icmp_error(typ) {
        return Ok(None);
    }
    let inner = off + 8;
    let q = &b[inner..ip.total];
    let inner_ip = parse_ip(q, true)?;
    if inner_ip.proto != PROTO_TCP && inner_ip.proto != PROTO_UDP {
        return Err(Malformed::Protocol);
    }
    if q.len() < inner_ip.ihl + 8 {
        return Err(Malformed::L4Length);
    }
    let inner_ip = Ip { total: inner_ip.total, ..inner_ip };
    Ok(Some(IcmpErr {
        off,
        typ,
        code: b[off + 1],
        inner,
        inner_ip,
        inner_sport: be16(q, inner_ip.ihl),
        inner_dport: be16(q, inner_ip.ihl + 2),
        inner_seq: be32(q, inner_ip.ihl + 4),
    }))
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071 full sum, RFC 1624 incremental update).

/// Ones'-complement sum of `data` (big-endian 16-bit words, odd byte padded) plus `init`,
/// not folded.
#[inline]
pub fn sum(data: &[u8], init: u64) -> u64 {
    let mut acc: u64 = init;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let a = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
        let b = u32::from_be_bytes([c[4], c[5], c[6], c[7]]) as u64;
        acc = acc.wrapping_add(a).wrapping_add(b);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc = acc.wrapping_add(u16::from_be_bytes([rest[i], rest[i + 1]]) as u64);
        i += 2;
    }
    if i < rest.len() {
        acc = acc.wrapping_add((rest[i] as u64) << 8);
    }
    acc
}

#[inline]
pub fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum of `data` with extra sum `init` (returns the value to store; a buffer
/// whose checksum field is right sums to 0).
pub fn checksum(data: &[u8], init: u64) -> u16 {
    !fold(sum(data, init))
}

pub fn pseudo_sum(src: u32, dst: u32, proto: u8, len: usize) -> u64 {
    (src >> 16) as u64 + (src & 0xffff) as u64 + (dst >> 16) as u64 + (dst & 0xffff) as u64
        + proto as u64
        + len as u64
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
#[inline]
pub fn csum_update16(hc: u16, old: u16, new: u16) -> u16 {
    let s = (!hc as u64) + (!old as u64) + new as u64;
    !fold(s)
}

#[inline]
pub fn csum_update32(hc: u16, old: u32, new: u32) -> u16 {
    let h = csum_update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    csum_update16(h, old as u16, new as u16)
}

/// Rewrites the IPv4 header checksum in full.
pub fn fix_ip_checksum(b: &mut [u8], ihl: usize) {
    b[10] = 0;
    b[11] = 0;
    let c = checksum(&b[..ihl], 0);
    put16(b, 10, c);
}

/// Writes a full L4 checksum (TCP or UDP) for the packet `b[..total]` with header length `ihl`.
pub fn fix_l4_checksum(b: &mut [u8], ihl: usize, total: usize, proto: u8) {
    let src = be32(b, 12);
    let dst = be32(b, 16);
    let l4len = total - ihl;
    let coff = match proto {
        PROTO_TCP => ihl + 16,
        PROTO_UDP => ihl + 6,
        PROTO_ICMP => ihl + 2,
        _ => return,
    };
    b[coff] = 0;
    b[coff + 1] = 0;
    let init = if proto == PROTO_ICMP { 0 } else { pseudo_sum(src, dst, proto, l4len) };
    let mut c = checksum(&b[ihl..total], init);
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    put16(b, coff, c);
}

/// Verifies an L4 checksum; used by tests and by the ICMP path.
pub fn l4_checksum_ok(b: &[u8], ihl: usize, total: usize, proto: u8) -> bool {
    let src = be32(b, 12);
    let dst = be32(b, 16);
    let init = if proto == PROTO_ICMP { 0 } else { pseudo_sum(src, dst, proto, total - ihl) };
    fold(sum(&b[ihl..total], init)) == 0xffff
}

pub fn ip_to_string(a: u32) -> String {
    let o = a.to_be_bytes();
    format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
}

pub fn parse_ipv4_str(s: &str) -> Option<u32> {
    let mut parts = s.split('.');
    let mut out: u32 = 0;
    for _ in 0..4 {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v: u32 = p.parse().ok()?;
        if v > 255 {
            return None;
        }
        out = (out << 8) | v;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// Rewrites addresses and ports, then writes the IP checksum and the full L4 checksum (a
/// payload verdict makes the skb CHECKSUM_NONE, so the full checksum is always needed).
pub fn rewrite(pkt: &mut [u8], ihl: usize, proto: u8, src: u32, sport: u16, dst: u32, dport: u16) {
    put32(pkt, 12, src);
    put32(pkt, 16, dst);
    put16(pkt, ihl, sport);
    put16(pkt, ihl + 2, dport);
    let total = be16(pkt, 2) as usize;
    fix_ip_checksum(pkt, ihl);
    fix_l4_checksum(pkt, ihl, total, proto);
}

pub mod build {
    //! Well-formed packets (IP id 0x1234, DF, TTL 64, full checksums), for the benchmark loop and
    //! the tests.
    use super::*;

    pub fn ipv4(proto: u8, src: u32, dst: u32, l4: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20 + l4.len()];
        b[0] = 0x45;
        put16(&mut b, 2, (20 + l4.len()) as u16);
        put16(&mut b, 4, 0x1234);
        b[6] = 0x40; // DF
        b[8] = 64;
        b[9] = proto;
        put32(&mut b, 12, src);
        put32(&mut b, 16, dst);
        b[20..].copy_from_slice(l4);
        fix_ip_checksum(&mut b, 20);
        let total = b.len();
        fix_l4_checksum(&mut b, 20, total, proto);
        b
    }

    #[allow(clippy::too_many_arguments)]
    pub fn tcp(src: u32, sport: u16, dst: u32, dport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(opts.len() % 4 == 0);
        let mut l4 = vec![0u8; 20 + opts.len() + payload.len()];
        put16(&mut l4, 0, sport);
        put16(&mut l4, 2, dport);
        put32(&mut l4, 4, seq);
        put32(&mut l4, 8, ack);
        l4[12] = (((20 + opts.len()) / 4) as u8) << 4;
        l4[13] = flags;
        put16(&mut l4, 14, 64240);
        l4[20..20 + opts.len()].copy_from_slice(opts);
        l4[20 + opts.len()..].copy_from_slice(payload);
        ipv4(PROTO_TCP, src, dst, &l4)
    }

    pub fn udp(src: u32, sport: u16, dst: u32, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; 8 + payload.len()];
        put16(&mut l4, 0, sport);
        put16(&mut l4, 2, dport);
        put16(&mut l4, 4, (8 + payload.len()) as u16);
        l4[8..].copy_from_slice(payload);
        ipv4(PROTO_UDP, src, dst, &l4)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const A: u32 = 0xc0a8_010a;
    const B: u32 = 0x0a00_000b;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 0001 f203 f4f5 f6f7 -> sum ddf2 -> checksum 220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d, 0), 0x220d);
        // odd length
        assert_eq!(fold(sum(&[0x01], 0)), 0x0100);
    }

    #[test]
    fn incremental_matches_full() {
        let mut p = tcp(A, 40000, B, 80, 1, 2, TCP_ACK, &[], b"hello world");
        let ihl = 20;
        let total = p.len();
        assert!(l4_checksum_ok(&p, ihl, total, PROTO_TCP));
        // change destination address and port incrementally
        let old_c = be16(&p, ihl + 16);
        let c1 = csum_update32(old_c, B, 0xcb00_7101);
        let c2 = csum_update16(c1, 80, 3333);
        put32(&mut p, 16, 0xcb00_7101);
        put16(&mut p, ihl + 2, 3333);
        put16(&mut p, ihl + 16, c2);
        assert!(l4_checksum_ok(&p, ihl, total, PROTO_TCP));
        let mut q = p.clone();
        fix_l4_checksum(&mut q, ihl, total, PROTO_TCP);
        assert_eq!(be16(&q, ihl + 16), c2);
        // RFC 1624 §4 example: HC=0xdd2f, m=0x5555 -> m'=0x3285 gives 0x0000 (not 0xffff)
        assert_eq!(csum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn parse_roundtrip() {
        let p = tcp(A, 1, B, 2, 3, 4, TCP_SYN, &[2, 4, 5, 0xb4], b"");
        let ip = parse_ip(&p, false).unwrap();
        assert_eq!(ip.proto, PROTO_TCP);
        let t = parse_tcp(&p, &ip).unwrap();
        assert_eq!((t.sport, t.dport, t.seq, t.ack, t.flags, t.hlen), (1, 2, 3, 4, TCP_SYN, 24));
        let u = udp(A, 5, B, 53, b"abc");
        let ip = parse_ip(&u, false).unwrap();
        let uu = parse_udp(&u, &ip).unwrap();
        assert_eq!((uu.sport, uu.dport, uu.end - uu.payload), (5, 53, 3));
    }

    #[test]
    fn rejects_bad_headers() {
        let p = udp(A, 5, B, 53, b"abc");
        assert_eq!(parse_ip(&p[..19], false), Err(Malformed::Short));
        let mut q = p.clone();
        q[0] = 0x65;
        assert_eq!(parse_ip(&q, false), Err(Malformed::Version));
        let mut q = p.clone();
        q[0] = 0x4f;
        assert_eq!(parse_ip(&q, false), Err(Malformed::HeaderLength));
        let mut q = p.clone();
        put16(&mut q, 2, 200);
        assert_eq!(parse_ip(&q, false), Err(Malformed::TotalLength));
        let mut q = p.clone();
        q[8] ^= 1;
        assert_eq!(parse_ip(&q, false), Err(Malformed::IpChecksum));
        let mut q = p.clone();
        put16(&mut q, 24, 100);
        let ip = parse_ip(&q, false).unwrap();
        assert_eq!(parse_udp(&q, &ip), Err(Malformed::L4Length));
        assert!(validate_tcp_options(&[2, 4, 5]).is_err());
        assert!(validate_tcp_options(&[2, 1, 5, 5]).is_err());
        assert!(validate_tcp_options(&[8]).is_err());
        assert!(validate_tcp_options(&[1, 1, 0, 99]).is_ok());
    }

    #[test]
    fn ipv4_strings() {
        assert_eq!(parse_ipv4_str("10.0.0.11"), Some(0x0a00_000b));
        assert_eq!(parse_ipv4_str("256.0.0.1"), None);
        assert_eq!(parse_ipv4_str("1.2.3"), None);
        assert_eq!(parse_ipv4_str("1.2.3.4.5"), None);
        assert_eq!(ip_to_string(0xc0a8_010a), "192.168.1.10");
    }
}
