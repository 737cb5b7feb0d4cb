//! The PCCOM construction end to end (docs/pccom.md §3–§5, §10): golden packets, a MAC on every
//! field, the 2^32 wrap, retransmissions and re-segmentation, and the UDP replay window.

mod common;
use common::*;

/// Golden packets: fixed keys and inputs, exact protected bytes. A second implementation that
/// follows docs/pccom.md must produce the same bytes: these vectors are quoted there (§10), and
/// tests/golden.py, written from the document alone (Python's hmac and the openssl command line),
/// recomputes them (native/test/golden.test.ts compares the three).
const GOLDEN_SYN: &str = "450000401234400040062ad0c0a8010acb0071019c404e210102030400000000b002faf004e70000020405a4fd144753020000503726b0f9eeaa1fded660486c";
const GOLDEN_DATA: &str = "450000431234400040062acdc0a8010acb0071019c404e21010203050a0b0c0d9018faf0d9c80000fd104753ef84d98949b57844444107eaa84e88227adacde8a6f55d";
const GOLDEN_UDP: &str = "4500003b1234400040112acac0a8010acb0071019c404e210027c115bdbeb41a704909b6e954c80050000000000001fd5d932ffa5a047987bb2e4b";
const ISN_EN: u32 = 0x0102_0304;
const ISN_IN: u32 = 0x0a0b_0c0c;

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{:02x}", b)).collect()
}

/// The golden packets as the agent protects them: (SYN, data after IN's SYN-ACK, UDP datagram).
fn golden() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut pr = Pair::tcp();
    let mut syn = build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &[2, 4, 0x05, 0xb4], b"");
    assert_eq!(pr.a.process(&mut syn, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    let mut wire = syn.clone();
    nat(&mut wire, true);
    assert_eq!(pr.g.process(&mut wire, Hook::In, Handle::Memory, 1), Verdict::Accept);
    pr.down(build::tcp(PIN, D, PGR, T, ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, &[], b""));
    let mut data = build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK | TCP_PSH, &[], b"hello, gsra");
    assert_eq!(pr.a.process(&mut data, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    let mut u = agent();
    u.add_flow(&agent_spec(PROTO_UDP), 1).unwrap();
    let mut dg = build::udp(PEN, S, VIN, D, b"udp payload");
    assert_eq!(u.process(&mut dg, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    if std::env::var("GSRA_PRINT_GOLDEN").is_ok() {
        println!("syn {}\ndata {}\nudp {}", hex(&syn), hex(&data), hex(&dg));
    }
    (syn, data, dg)
}

#[test]
fn golden_packets_have_the_documented_bytes() {
    let (syn, data, dg) = golden();
    assert_eq!(hex(&syn), GOLDEN_SYN);
    assert_eq!(hex(&data), GOLDEN_DATA);
    assert_eq!(hex(&dg), GOLDEN_UDP);
}

#[test]
fn golden_tcp_mac_is_the_synthetic_iv_over_the_plaintext() {
    let (_, data, _) = golden();
    let k = keys(1);
    let ct = &data[40 + 16..];
    let t: [u8; 12] = data[40 + 4..40 + 16].try_into().unwrap();
    // Decrypt under the counter blocks T || be32(i).
    let mut pt = ct.to_vec();
    let mut aes = gsra_native::crypto::AesCtr::new(&k.enc).unwrap();
    assert!(aes.apply_iv(&gsra_native::crypto::siv_block(&t), 0, &mut pt));
    assert_eq!(pt, b"hello, gsra".to_vec());
    // T = HMAC(0x11 || ISN_EN || ISN_IN || ext_seq || ext_ack || 0 || flags || window || urgent ||
    // len(other options) = 0 || option head || plaintext).
    let mut mi = vec![0x11u8];
    mi.extend_from_slice(&ISN_EN.to_be_bytes());
    mi.extend_from_slice(&ISN_IN.to_be_bytes());
    mi.extend_from_slice(&(ISN_EN as u64 + 1).to_be_bytes());
    mi.extend_from_slice(&(ISN_IN as u64 + 1).to_be_bytes());
    mi.extend_from_slice(&[0, TCP_ACK | TCP_PSH, 0xfa, 0xf0, 0, 0, 0, 0]);
    mi.extend_from_slice(&[0xfd, 0x10, 0x47, 0x53]);
    mi.extend_from_slice(&pt);
    let tag = gsra_native::crypto::hmac_sha256(&k.mac, &[&mi]).unwrap();
    assert_eq!(&t[..], &tag[..12]);
}

#[test]
fn golden_udp_mac_is_the_synthetic_iv_over_the_plaintext() {
    let (_, _, dg) = golden();
    let k = keys(1);
    // UDP: T = HMAC(0x12 || d || ctr48 || plaintext)
    let l = dg.len();
    let t: [u8; 12] = dg[l - 12..].try_into().unwrap();
    let mut pt = dg[28..l - 20].to_vec();
    let mut aes = gsra_native::crypto::AesCtr::new(&k.enc).unwrap();
    assert!(aes.apply_iv(&gsra_native::crypto::siv_block(&t), 0, &mut pt));
    assert_eq!(pt, b"udp payload".to_vec());
    let mut mi = vec![0x12u8];
    mi.extend_from_slice(&dg[l - 20..l - 12]);
    mi.extend_from_slice(&pt);
    let tag = gsra_native::crypto::hmac_sha256(&k.mac, &[&mi]).unwrap();
    assert_eq!(&t[..], &tag[..12]);
}

/// A bound, established pair and one protected segment with options and payload, after the home
/// router.
fn tamper_target() -> (Pair, Vec<u8>) {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 5000, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 9000, 5001, TCP_SYN | TCP_ACK, &[], b""));
    let mut wire = build::tcp(PEN, S, VIN, D, 5001, 9001, TCP_ACK, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], b"hello");
    assert_eq!(pr.a.process(&mut wire, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    nat(&mut wire, true);
    (pr, wire)
}

#[test]
fn a_change_to_any_covered_field_fails_verification() {
    let (mut pr, wire) = tamper_target();
    let ihl = 20;
    // seq, ack, the AE bit and a reserved bit of byte 12, flags, window, urgent, an option byte,
    // payload, MAC
    let spots = [(ihl + 4, 1), (ihl + 8, 1), (ihl + 12, 0x01), (ihl + 12, 0x02), (ihl + 13, 1), (ihl + 14, 1), (ihl + 18, 1), (ihl + 26, 1), (wire.len() - 1, 1), (wire.len() - 6, 1)];
    for &(i, bit) in spots.iter() {
        let mut q = wire.clone();
        q[i] ^= bit;
        fix_l4_checksum(&mut q, 20, wire.len(), PROTO_TCP);
        let before = pr.g.stats.verify_failed;
        assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::BadMac), "byte {}", i);
        assert_eq!(pr.g.stats.verify_failed, before + 1);
    }
    // The MAC option's last byte
    let mut q = wire.clone();
    let l = q.len();
    q[l - 5 - 1] ^= 0x80;
    fix_l4_checksum(&mut q, 20, l, PROTO_TCP);
    assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::BadMac));
}

#[test]
fn a_segment_without_the_option_fails_verification() {
    let (mut pr, _) = tamper_target();
    let mut plain = build::tcp(GHR, M, GGR, T, 5001, 9001, TCP_ACK, &[], b"hello");
    assert_eq!(pr.g.process(&mut plain, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::NoMac));
}

#[test]
fn verification_failures_are_counted_per_flow_and_reported_once_a_second() {
    let (mut pr, wire) = tamper_target();
    for i in 0..10 {
        let mut q = wire.clone();
        q[wire.len() - 1 - i] ^= 0x01;
        fix_l4_checksum(&mut q, 20, wire.len(), PROTO_TCP);
        assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::BadMac));
    }
    // The untampered one still passes; events are rate-limited (one per second per flow).
    let mut ok = wire.clone();
    assert_eq!(pr.g.process(&mut ok, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let vf: Vec<_> = pr.g.events.iter().filter(|e| matches!(e, Event::VerifyFailed { .. })).collect();
    assert_eq!(vf.len(), 1);
    assert_eq!(pr.g.flow(7).unwrap().c.verify_failed, 10);
}

#[test]
fn failures_still_pending_after_a_second_are_reported_without_a_later_failure() {
    let (mut pr, wire) = tamper_target();
    for i in 0..10 {
        let mut q = wire.clone();
        q[wire.len() - 1 - i] ^= 0x01;
        fix_l4_checksum(&mut q, 20, wire.len(), PROTO_TCP);
        pr.g.process(&mut q, Hook::In, Handle::Memory, 3);
    }
    pr.g.events.clear();
    pr.g.sweep(500, 64);
    assert!(pr.g.events.is_empty(), "not before a second");
    pr.g.sweep(1003, 64);
    let counts: Vec<u64> = pr.g.events.iter().filter_map(|e| if let Event::VerifyFailed { count, reason, .. } = e { assert_eq!(*reason, "bad-mac"); Some(*count) } else { None }).collect();
    assert_eq!(counts, vec![9], "the trailing burst is reported: 1 at once, 9 by the sweep");
    assert_eq!(pr.g.stats.drops.get(Reason::BadMac), 10);
}

const WRAP_ISN: u32 = 0xffff_fc00; // 1024 bytes before the wrap

/// A pair whose EN -> IN sequence numbers wrap 1024 bytes into the data, and 3000 data bytes.
fn wrap_pair() -> (Pair, Vec<u8>) {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, WRAP_ISN, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 77, WRAP_ISN.wrapping_add(1), TCP_SYN | TCP_ACK, &[], b""));
    (pr, (0..3000u32).map(|i| (i * 7 + 3) as u8).collect())
}

fn segment(seq: u32, data: &[u8]) -> Vec<u8> {
    build::tcp(PEN, S, VIN, D, seq, 78, TCP_ACK, &[], data)
}

#[test]
fn a_segment_straddling_the_wrap_is_delivered_intact() {
    let (mut pr, data) = wrap_pair();
    let (_, at_in) = pr.up(segment(WRAP_ISN.wrapping_add(1), &data[..1400]));
    assert_eq!(payload_of(&at_in), data[..1400].to_vec());
}

#[test]
fn a_retransmission_has_identical_wire_bytes() {
    let (mut pr, data) = wrap_pair();
    let seq0 = WRAP_ISN.wrapping_add(1);
    let (w_whole, _) = pr.up(segment(seq0, &data[..1400]));
    let (w_again, _) = pr.up(segment(seq0, &data[..1400]));
    assert_eq!(w_whole, w_again);
}

#[test]
fn a_resegmented_retransmission_is_delivered_intact_under_fresh_keystreams() {
    let (mut pr, data) = wrap_pair();
    let seq0 = WRAP_ISN.wrapping_add(1);
    let (w_whole, _) = pr.up(segment(seq0, &data[..1400]));
    let (w1, i1) = pr.up(segment(seq0, &data[..600]));
    let (w2, i2) = pr.up(segment(seq0.wrapping_add(600), &data[600..1400]));
    assert_eq!(payload_of(&i1), data[..600].to_vec());
    assert_eq!(payload_of(&i2), data[600..1400].to_vec());
    // Other segments, other synthetic IVs: the same bytes at the same positions are encrypted
    // under unrelated keystreams, so the two ciphertexts' XOR is not the plaintexts' XOR (zero).
    let whole = payload_of(&w_whole);
    let mut ct = payload_of(&w1);
    ct.extend(payload_of(&w2));
    let same = ct.iter().zip(whole.iter()).filter(|(a, b)| a == b).count();
    assert!(same < 40, "{} of 1400 ciphertext bytes coincide", same);
}

#[test]
fn after_the_wrap_positions_continue_at_2_to_the_32() {
    let (mut pr, data) = wrap_pair();
    let seq0 = WRAP_ISN.wrapping_add(1);
    let (w_whole, _) = pr.up(segment(seq0, &data[..1400]));
    // After the wrap, sequence numbers are small again but the positions are 2^32 + x.
    let seq_after = seq0.wrapping_add(1400);
    assert!(seq_after < 1000);
    let (_, i3) = pr.up(segment(seq_after, &data[1400..3000]));
    assert_eq!(payload_of(&i3), data[1400..3000].to_vec());
    assert_eq!(pr.a.flow(1).map(|f| f.state), Some(FlowState::Established));
    // A late retransmission from before the wrap still uses the old SNE: it is byte for byte the
    // segment sent before the wrap, and it still verifies.
    let (w_late, i_late) = pr.up(segment(seq0, &data[..1400]));
    assert_eq!(w_late, w_whole);
    assert_eq!(payload_of(&i_late), data[..1400].to_vec());
}

#[test]
fn no_keystream_is_reused_across_the_wrap() {
    // The same segment (same 32-bit numbers, same bytes) at position x and at 2^32 + x: the MAC
    // input holds the 64-bit position, so the synthetic IV and the keystream differ.
    use gsra_native::pccom::{tcp_protect, Dir, TcpPos};
    let x: u32 = 1000;
    let protect = |ext_seq: u64| {
        let mut p = build::tcp(PEN, S, GGR, T, x, 7, TCP_ACK, &[], &[0u8; 64]);
        let ip = parse_ip(&p, false).unwrap();
        let tcp = parse_tcp(&p, &ip).unwrap();
        let mut dir = Dir::new(&keys(1)).unwrap();
        let pos = TcpPos { ext_seq, ext_ack: 7, isn_sender: 1, isn_receiver: 2 };
        tcp_protect(&mut p, &ip, &tcp, &mut dir, &pos, D).unwrap();
        p
    };
    let (a, b) = (protect(x as u64), protect((1u64 << 32) + x as u64));
    assert_eq!(a.len(), b.len());
    let l = a.len();
    assert_ne!(a[l - 64..], b[l - 64..]);
}

#[test]
fn udp_carries_d_and_a_counter_in_its_trailer_and_binds() {
    let mut pr = Pair::udp();
    let q = b"\x12\x34 query".to_vec();
    let (wire, at_in) = pr.up(build::udp(PEN, S, VIN, D, &q));
    // Trailer: d(2) || ctr(6) || mac(12)
    assert_eq!(wire.len(), 28 + q.len() + 20);
    let pl = payload_of(&wire);
    let tr = &pl[pl.len() - 20..];
    assert_eq!(be16(tr, 0), D);
    assert_eq!(&tr[2..8], &[0, 0, 0, 0, 0, 1]);
    assert_eq!(payload_of(&at_in), q);
    let ip = parse_ip(&at_in, false).unwrap();
    assert_eq!((ip.src, ip.dst), (PGR, PIN));
    assert!(matches!(pr.g.events.last(), Some(Event::Bound { d: D, .. })));
}

#[test]
fn a_replayed_datagram_is_dropped_and_counted() {
    let mut pr = Pair::udp();
    let (wire, _) = pr.up(build::udp(PEN, S, VIN, D, b"\x12\x34 query"));
    let mut again = wire.clone();
    assert_eq!(pr.g.process(&mut again, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::Replay));
    assert_eq!(pr.g.stats.replay, 1);
}

#[test]
fn udp_answers_reach_the_app_from_vin() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"\x12\x34 query"));
    let (_, at_en) = pr.down(build::udp(PIN, D, PGR, T, b"answer"));
    assert_eq!(payload_of(&at_en), b"answer".to_vec());
    let ip = parse_ip(&at_en, false).unwrap();
    assert_eq!((ip.src, ip.dst), (VIN, PEN));
}

#[test]
fn datagrams_out_of_order_within_the_window_are_accepted_once() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"\x12\x34 query"));
    let mut w: Vec<Vec<u8>> = Vec::new();
    for i in 0..5u8 {
        let mut p = build::udp(PEN, S, VIN, D, &[i; 10]);
        assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 3), Verdict::Accept);
        nat(&mut p, true);
        w.push(p);
    }
    for i in [4usize, 1, 3, 0, 2] {
        let mut p = w[i].clone();
        assert_eq!(pr.g.process(&mut p, Hook::In, Handle::Memory, 3), Verdict::Accept);
        let mut p = w[i].clone();
        assert_eq!(pr.g.process(&mut p, Hook::In, Handle::Memory, 3), Verdict::Drop(Reason::Replay));
    }
}
