//! GSO super-packets taken on the sending side (gso.rs, Engine::gso_size): cut to the local
//! stack's segment size, each segment a valid packet with its own PCCOM option and MAC, the last
//! one short; the size follows the MSS the peer announced and the path MTU ICMP told; anything
//! the engine cannot take whole is left to the kernel (None).

mod common;
use common::*;
use gsra_native::gso::{mss_option, segment_size, segment_tcp, GsoError};

const ISN_EN: u32 = 0x0102_0304;
const ISN_IN: u32 = 0x0a0b_0c0d;
/// NOP NOP timestamps: the options of an established Linux connection's data segments.
const TS_OPTS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A super-packet from the app on EN: `n` payload bytes, IP ID 0x1234, PSH|ACK (and `extra`).
fn super_up(n: usize, extra: u8) -> Vec<u8> {
    build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK | TCP_PSH | extra, &TS_OPTS, &data(n))
}

fn handshake(pr: &mut Pair) {
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
}

fn cut(p: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let n = segment_tcp(p, mss, &mut out, true).unwrap();
    out.truncate(n);
    out
}

#[test]
fn a_super_packet_is_cut_into_full_segments_and_a_short_last_one_with_valid_headers() {
    let p = super_up(10_000, TCP_FIN | TCP_CWR);
    let segs = cut(&p, 1432);
    // 6 full segments of 1432 and a last one of 10000 - 6 * 1432 = 1408.
    let lens: Vec<usize> = segs.iter().map(|s| payload_of(s).len()).collect();
    assert_eq!(lens, vec![1432, 1432, 1432, 1432, 1432, 1432, 1408]);
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let ip = parse_ip(s, false).expect("IP header and checksum valid");
        assert_eq!(ip.total, s.len());
        assert_eq!(be16(s, 4), 0x1234 + i as u16, "IP ID counts up");
        assert!(l4_ok(s), "segment {} TCP checksum", i);
        let t = tcp_of(s);
        assert_eq!(t.seq, ISN_EN + 1 + (i * 1432) as u32);
        assert_eq!(t.ack, ISN_IN + 1);
        assert_eq!(&s[t.off + 20..t.off + t.hlen], &TS_OPTS[..], "options copied");
        let last = i == segs.len() - 1;
        assert_eq!(t.flags & (TCP_FIN | TCP_PSH) != 0, last, "FIN/PSH only on the last");
        assert_eq!(t.flags & TCP_CWR != 0, i == 0, "CWR only on the first");
        assert!(t.flags & TCP_ACK != 0);
        joined.extend_from_slice(&payload_of(s));
    }
    assert_eq!(joined, data(10_000));
}

#[test]
fn odd_sizes_exact_multiples_and_small_packets() {
    // An odd payload and an odd MSS: 1001 + 1001 + 997.
    let lens: Vec<usize> = cut(&super_up(2999, 0), 1001).iter().map(|s| payload_of(s).len()).collect();
    assert_eq!(lens, vec![1001, 1001, 997]);
    // An exact multiple: no empty segment after it.
    let lens: Vec<usize> = cut(&super_up(4 * 1432, 0), 1432).iter().map(|s| payload_of(s).len()).collect();
    assert_eq!(lens, vec![1432; 4]);
    // Smaller than one segment, and one byte over: 1 and 2 segments.
    assert_eq!(cut(&super_up(500, 0), 1432).len(), 1);
    let two = cut(&super_up(1433, 0), 1432);
    assert_eq!(payload_of(&two[1]), vec![data(1433)[1432]]);
    assert_eq!(tcp_of(&two[1]).seq, ISN_EN + 1 + 1432);
    // The sequence number wraps.
    let p = build::tcp(PEN, S, VIN, D, 0xffff_fc00, 1, TCP_ACK, &[], &data(3000));
    let segs = cut(&p, 1460);
    assert_eq!(tcp_of(&segs[1]).seq, 0xffff_fc00u32.wrapping_add(1460));
    assert_eq!(tcp_of(&segs[2]).seq, 0xffff_fc00u32.wrapping_add(2920));
}

#[test]
fn syn_urg_other_protocols_and_tiny_sizes_are_refused() {
    let mut out = Vec::new();
    assert_eq!(segment_tcp(&super_up(3000, TCP_URG), 1432, &mut out, true), Err(GsoError::Flags));
    let syn = build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &SYN_OPTS, b"");
    assert_eq!(segment_tcp(&syn, 1432, &mut out, true), Err(GsoError::Flags));
    assert_eq!(segment_tcp(&build::udp(PEN, S, VIN, D, &data(3000)), 1432, &mut out, true), Err(GsoError::NotTcp));
    assert_eq!(segment_tcp(&super_up(3000, 0), 63, &mut out, true), Err(GsoError::Mss));
    let mut bad = super_up(3000, 0);
    bad[10] ^= 0xff; // IP header checksum
    assert_eq!(segment_tcp(&bad, 1432, &mut out, true), Err(GsoError::NotTcp));
}

#[test]
fn without_the_tcp_checksum_only_that_field_differs() {
    let p = super_up(3000, 0);
    let mut a = Vec::new();
    let mut b = Vec::new();
    assert_eq!(segment_tcp(&p, 1432, &mut a, true).unwrap(), 3);
    assert_eq!(segment_tcp(&p, 1432, &mut b, false).unwrap(), 3);
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(parse_ip(y, false).is_ok());
        assert_eq!(x[..36], y[..36]);
        assert_eq!(x[38..], y[38..]);
        assert_eq!(be16(y, 36), be16(&p, 36), "the super-packet's checksum field, untouched");
    }
}

#[test]
fn the_segment_size_is_the_peer_mss_or_the_path_mtu_less_the_options() {
    assert_eq!(segment_size(1444, 0, 32), 1432);
    assert_eq!(segment_size(1444, 1500, 20), 1444);
    assert_eq!(segment_size(1444, 1264, 32), 1264 - 40 - 12);
    assert_eq!(segment_size(0, 0, 32), 536 - 12);
    let syn = build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &SYN_OPTS, b"");
    assert_eq!(mss_option(&syn, &tcp_of(&syn)), Some(1460));
    let bare = build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &[], b"");
    assert_eq!(mss_option(&bare, &tcp_of(&bare)), None);
}

#[test]
fn the_agent_cuts_to_the_mss_the_gateway_announced_and_in_gets_the_stream_back() {
    let mut pr = Pair::tcp();
    let p = super_up(6000, 0);
    assert_eq!(pr.a.gso_size(&p, Hook::Out), None, "no handshake seen yet");
    handshake(&mut pr);
    // IN announced 1460; the gateway clamped it by 16; the app's stack sends 1444 - 12 (timestamps).
    let size = pr.a.gso_size(&p, Hook::Out).unwrap();
    assert_eq!(size, 1432);
    assert_eq!(pr.a.gso_size(&p, Hook::In), None, "only the sending side");
    let mut at_in = Vec::new();
    for s in cut(&p, size) {
        let (wire, delivered) = pr.up(s);
        assert!(wire.len() <= 1500, "each protected segment fits 1500: {}", wire.len());
        assert_eq!(tcp_of(&delivered).seq, ISN_EN + 1 + at_in.len() as u32);
        at_in.extend_from_slice(&payload_of(&delivered));
    }
    assert_eq!(at_in, data(6000));
    assert_eq!(pr.a.stats.translated_out, 1 + 5);
}

#[test]
fn the_gateway_cuts_ins_super_packets_to_the_mss_the_agent_announced() {
    let mut pr = Pair::tcp();
    handshake(&mut pr);
    let p = build::tcp(PIN, D, PGR, T, ISN_IN + 1, ISN_EN + 1, TCP_ACK, &TS_OPTS, &data(5000));
    assert_eq!(pr.g.gso_size(&p, Hook::Out), Some(1432));
    let mut at_en = Vec::new();
    for s in cut(&p, 1432) {
        let (wire, delivered) = pr.down(s);
        assert!(wire.len() <= 1500);
        at_en.extend_from_slice(&payload_of(&delivered));
    }
    assert_eq!(at_en, data(5000));
    // From another source than the flow's PIN:d: not taken whole (the engine refuses it anyway).
    let other = build::tcp(PIN + 1, D, PGR, T, ISN_IN + 1, ISN_EN + 1, TCP_ACK, &TS_OPTS, &data(5000));
    assert_eq!(pr.g.gso_size(&other, Hook::Out), None);
}

#[test]
fn fragmentation_needed_about_a_flow_shrinks_its_cuts() {
    let mut pr = Pair::tcp();
    handshake(&mut pr);
    // One segment leaves; a router says "fragmentation needed, MTU 1280" quoting it.
    let mut sent = super_up(1000, 0);
    assert_eq!(pr.a.process(&mut sent, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let mut l4 = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0x00];
    l4.extend_from_slice(&sent[..48]);
    let mut icmp = build::ipv4(PROTO_ICMP, 0xc633_6401, PEN, &l4);
    assert_eq!(pr.a.process(&mut icmp, Hook::In, Handle::Memory, 4), Verdict::Accept);
    assert_eq!(be16(&icmp, 26), 1280 - 16, "the app's stack is told 1264");
    // Its stack now sends 1264 - 40 - 12 bytes per segment: so are the cuts.
    assert_eq!(pr.a.gso_size(&super_up(6000, 0), Hook::Out), Some(1264 - 40 - 12));
}

#[test]
fn udp_and_flows_the_engine_does_not_simply_protect_are_left_to_the_kernel() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"ping"));
    assert_eq!(pr.a.gso_size(&build::udp(PEN, S, VIN, D, &data(3000)), Hook::Out), None);
    // No flow for this 5-tuple (its SYN would be held for negotiation).
    let a = agent();
    assert_eq!(a.gso_size(&super_up(3000, 0), Hook::Out), None);
}
