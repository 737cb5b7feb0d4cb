//! ICMP errors that quote a translated packet are translated in all four directions (and a
//! "fragmentation needed" MTU shrinks by PCCOM's overhead) once they validate (docs/pccom.md
//! §8.1): TCP by the quoted sequence number, UDP by kind and sender; MTUs below the floor never.
//! Other ICMP passes unchanged.

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

const ISN_EN: u32 = 5000;
const ISN_IN: u32 = 9000;

/// A TCP pair after the handshake, with 1000 bytes from IN in flight to EN (not acknowledged)
/// and 500 bytes from EN delivered to IN (not acknowledged).
fn tcp_pair_in_flight() -> Pair {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK, &[], &[1u8; 500]));
    pr.down(build::tcp(PIN, D, PGR, T, ISN_IN + 1, ISN_EN + 1, TCP_ACK, &[], &[2u8; 1000]));
    pr
}

/// "Host unreachable" from a router on the internet about the download segment at `seq`.
fn unreachable_about_download(seq: u32) -> Vec<u8> {
    icmp_error(0xc000_0201, GGR, 1, [0; 4], &build::tcp(GGR, T, GHR, M, seq, ISN_EN + 1, TCP_ACK, &[], b""))
}

#[test]
fn a_tcp_error_quoting_a_sequence_number_in_the_send_window_is_translated() {
    let mut pr = tcp_pair_in_flight();
    let mut icmp = unreachable_about_download(ISN_IN + 1 + 400);
    assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Accept);
    assert_eq!(parse_ip(&icmp, false).unwrap().dst, PIN);
}

#[test]
fn a_tcp_error_quoting_a_sequence_number_outside_the_send_window_is_dropped() {
    let mut pr = tcp_pair_in_flight();
    for seq in [ISN_IN + 1 + 2000, ISN_IN.wrapping_sub(70_000), 0x1234_5678] {
        let mut icmp = unreachable_about_download(seq);
        assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid), "seq {}", seq);
    }
    assert_eq!(pr.g.stats.drops.get(Reason::IcmpInvalid), 3);
    assert_eq!(pr.g.stats.icmp_translated, 0);
}

#[test]
fn data_the_peer_acknowledged_is_outside_the_window_for_icmp() {
    let mut pr = tcp_pair_in_flight();
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN + 501, ISN_IN + 1001, TCP_ACK, &[], b""));
    let mut icmp = unreachable_about_download(ISN_IN + 1 + 400);
    assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid));
}

#[test]
fn a_lan_side_tcp_error_is_validated_against_the_stream_delivered_to_in() {
    let mut pr = tcp_pair_in_flight();
    let quoting = |seq: u32| icmp_error(0x0a00_00fe, PGR, 4, [0, 0, 0x05, 0x00], &build::tcp(PGR, T, PIN, D, seq, ISN_IN + 1, TCP_ACK, &[], b""));
    let mut ok = quoting(ISN_EN + 1 + 100);
    assert_eq!(pr.g.process(&mut ok, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let mut bad = quoting(ISN_EN + 1 + 9000);
    assert_eq!(pr.g.process(&mut bad, Hook::Out, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid));
}

#[test]
fn fragmentation_needed_below_the_floor_is_never_taken() {
    let mut pr = tcp_pair_in_flight();
    for mtu in [560u16, 1279, 0] {
        let m = mtu.to_be_bytes();
        let mut icmp = icmp_error(0xc000_0201, GGR, 4, [0, 0, m[0], m[1]], &build::tcp(GGR, T, GHR, M, ISN_IN + 1, ISN_EN + 1, TCP_ACK, &[], b""));
        assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::IcmpMtuFloor), "mtu {}", mtu);
    }
    let mut at_floor = icmp_error(0xc000_0201, GGR, 4, [0, 0, 0x05, 0x00], &build::tcp(GGR, T, GHR, M, ISN_IN + 1, ISN_EN + 1, TCP_ACK, &[], b""));
    assert_eq!(pr.g.process(&mut at_floor, Hook::In, Handle::Memory, 3), Verdict::Accept);
    assert_eq!(be16(&at_floor, 26), 1280 - 16);
}

#[test]
fn udp_errors_from_the_internet_other_than_fragmentation_needed_are_dropped() {
    let mut pr = bound_udp_pair();
    let mut icmp = icmp_error(0xc000_0201, GGR, 3, [0; 4], &build::udp(GGR, T, GHR, M, b"pong"));
    assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid));
    let mut icmp = icmp_error(GGR, PEN, 3, [0; 4], &build::udp(PEN, S, GGR, T, b"ping"));
    assert_eq!(pr.a.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid));
}

#[test]
fn a_udp_error_from_another_lan_host_than_pin_is_dropped() {
    let mut pr = bound_udp_pair();
    let mut icmp = icmp_error(PIN + 1, PGR, 3, [0; 4], &build::udp(PGR, T, PIN, D, b"ping"));
    assert_eq!(pr.g.process(&mut icmp, Hook::Out, Handle::Memory, 3), Verdict::Drop(Reason::IcmpInvalid));
}
