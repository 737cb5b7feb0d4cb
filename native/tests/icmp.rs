//! ICMP errors that quote a translated packet are translated in all four directions (and a
//! "fragmentation needed" MTU shrinks by PCCOM's overhead); other ICMP passes unchanged.

mod common;
use common::*;

/// A UDP pair after one datagram EN -> IN (the gateway is bound).
fn bound_udp_pair() -> Pair {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"ping"));
    pr
}

/// An ICMP destination unreachable with `code` (and `rest` as its last 4 header bytes) from `src`
/// to `dst`, quoting the first 28 bytes of `quoted`.
fn icmp_error(src: u32, dst: u32, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut l4 = vec![3u8, code, 0, 0];
    l4.extend_from_slice(&rest);
    l4.extend_from_slice(&quoted[..28]);
    build::ipv4(PROTO_ICMP, src, dst, &l4)
}

/// (quoted src, sport, dst, dport) of a translated error.
fn quoted(icmp: &[u8]) -> (u32, u16, u32, u16) {
    let q = &icmp[28..];
    (be32(q, 12), be16(q, 20), be32(q, 16), be16(q, 22))
}

#[test]
fn gateway_lan_side_error_about_pgr_t_goes_to_ghr_m() {
    let mut pr = bound_udp_pair();
    // IN answers "port unreachable" quoting PGR:t -> PIN:d
    let mut icmp = icmp_error(PIN, PGR, 3, [0; 4], &build::udp(PGR, T, PIN, D, b"ping"));
    assert_eq!(pr.g.process(&mut icmp, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (GGR, GHR));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    assert_eq!(quoted(&icmp), (GHR, M, GGR, T));
}

#[test]
fn agent_internet_side_fragmentation_needed_goes_to_the_app_with_a_smaller_mtu() {
    let mut pr = bound_udp_pair();
    // After the home NAT, the error quotes PEN:s -> GGR:t; "fragmentation needed", MTU 1500.
    let mut icmp = icmp_error(GGR, PEN, 4, [0, 0, 0x05, 0xdc], &build::udp(PEN, S, GGR, T, b"ping"));
    assert_eq!(pr.a.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (VIN, PEN));
    assert_eq!(be16(&icmp, 26), 1500 - 20);
    assert_eq!(quoted(&icmp), (PEN, S, VIN, D));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    assert_eq!(pr.a.stats.icmp_translated, 1);
}

#[test]
fn gateway_internet_side_fragmentation_needed_goes_to_in_with_a_smaller_mtu() {
    let mut pr = bound_udp_pair();
    // A router's "fragmentation needed" about our download, quoting GGR:t -> GHR:m, goes to IN
    // as PGR -> PIN quoting PIN:d -> PGR:t with the MTU lowered.
    let mut icmp = icmp_error(0xc000_0201, GGR, 4, [0, 0, 0x05, 0x78], &build::udp(GGR, T, GHR, M, b"pong"));
    assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst, be16(&icmp, 26)), (PGR, PIN, 1400 - 20));
    assert_eq!(quoted(&icmp), (PIN, D, PGR, T));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
}

#[test]
fn agent_own_error_about_a_download_leaves_for_ggr_quoting_ggr_t() {
    let mut pr = bound_udp_pair();
    // EN's own stack: port unreachable about a download, quoting VIN:d -> PEN:s, leaves as
    // PEN -> GGR quoting GGR:t -> PEN:s.
    let mut icmp = icmp_error(PEN, VIN, 3, [0; 4], &build::udp(VIN, D, PEN, S, b"late"));
    assert_eq!(pr.a.process(&mut icmp, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (PEN, GGR));
    assert_eq!(quoted(&icmp), (GGR, T, PEN, S));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    assert_eq!(pr.a.stats.icmp_translated, 1);
}

#[test]
fn echo_passes_unchanged_and_is_not_counted_as_translated() {
    let mut pr = bound_udp_pair();
    let mut echo = build::ipv4(PROTO_ICMP, GGR, PEN, &[8, 0, 0, 0, 0, 1, 0, 1]);
    let before = echo.clone();
    assert_eq!(pr.a.process(&mut echo, Hook::In, Handle::Memory, 3), Verdict::Accept);
    assert_eq!(echo, before);
    assert_eq!(pr.a.stats.icmp_translated, 0);
    assert_eq!(pr.a.stats.accepted_plain, 1);
}
