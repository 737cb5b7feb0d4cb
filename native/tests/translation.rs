//! Every rewrite direction of a TCP flow through agent, home router and gateway (incremental
//! checksum updates only at the router), MSS clamping, SACK trimming, compat mode, and what the
//! engine refuses to translate.

mod common;
use common::*;

const ISN_EN: u32 = 0x1000_0000;
const ISN_IN: u32 = 0x7000_0000;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: intra1\r\n\r\n";

fn syn() -> Vec<u8> {
    build::tcp(PEN, S, VIN, D, ISN_EN, 0, TCP_SYN, &SYN_OPTS, b"")
}

fn syn_ack() -> Vec<u8> {
    build::tcp(PIN, D, PGR, T, ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b"")
}

fn handshake(pr: &mut Pair) {
    pr.up(syn());
    pr.down(syn_ack());
}

#[test]
fn a_syn_leaves_en_for_ggr_t_and_reaches_in_from_pgr_t_with_the_mss_clamped() {
    let mut pr = Pair::tcp();
    let (wire, at_in) = pr.up(syn());
    // On the wire: PEN(after NAT GHR):m -> GGR:t, 20 bytes more (SYN option).
    let ip = parse_ip(&wire, false).unwrap();
    assert_eq!((ip.src, ip.dst, ip.total), (GHR, GGR, 20 + 20 + 20 + 20));
    let tw = parse_tcp(&wire, &ip).unwrap();
    assert_eq!((tw.sport, tw.dport), (M, T));
    // IN sees PGR:t -> PIN:d, no option, MSS clamped by 16.
    let ip = parse_ip(&at_in, false).unwrap();
    let ti = parse_tcp(&at_in, &ip).unwrap();
    assert_eq!((ip.src, ti.sport, ip.dst, ti.dport), (PGR, T, PIN, D));
    assert_eq!(ti.hlen, 40);
    assert_eq!(mss_of(&at_in), Some(1460 - 16));
}

#[test]
fn the_first_verified_syn_reports_its_source_and_the_next_segment_commits_it() {
    let mut pr = Pair::tcp();
    pr.up(syn());
    let ev = pr.g.events.drain(..).collect::<Vec<_>>();
    assert!(matches!(ev.as_slice(), [Event::Bound { id: 7, t: T, ghr: GHR, m: M, pin: PIN, d: D, .. }]), "{:?}", ev);
    assert_eq!(pr.g.flow(7).unwrap().binding, None, "a SYN (perhaps a replay) only makes a candidate");
    pr.down(syn_ack());
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK, &[], b""));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR, m: M }));
    assert!(pr.g.events.is_empty(), "committed where it was reported: no second event");
}

#[test]
fn a_syn_ack_leaves_the_gateway_for_ghr_m_and_reaches_the_app_from_vin_d() {
    let mut pr = Pair::tcp();
    pr.up(syn());
    let (wire, at_en) = pr.down(syn_ack());
    let ip = parse_ip(&wire, false).unwrap();
    assert_eq!((ip.src, ip.dst, ip.total), (GGR, GHR, 20 + 20 + 20 + 16));
    let ip = parse_ip(&at_en, false).unwrap();
    let te = parse_tcp(&at_en, &ip).unwrap();
    assert_eq!((ip.src, te.sport, ip.dst, te.dport), (VIN, D, PEN, S));
    assert_eq!(mss_of(&at_en), Some(1460 - 16));
}

#[test]
fn data_is_encrypted_on_the_wire_and_delivered_in_clear_both_ways() {
    let mut pr = Pair::tcp();
    handshake(&mut pr);
    let p = build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK | TCP_PSH, &[], REQUEST);
    let (wire, at_in) = pr.up(p);
    assert_ne!(payload_of(&wire), REQUEST.to_vec());
    assert_eq!(payload_of(&at_in), REQUEST.to_vec());
    assert_eq!(wire.len(), 20 + 20 + 16 + REQUEST.len());
    let reply = vec![0x42u8; 1400];
    let p = build::tcp(PIN, D, PGR, T, ISN_IN + 1, ISN_EN + 1 + REQUEST.len() as u32, TCP_ACK, &[], &reply);
    let (wire, at_en) = pr.down(p);
    assert_ne!(payload_of(&wire), reply);
    assert_eq!(payload_of(&at_en), reply);
}

#[test]
fn bare_ack_fin_and_rst_carry_and_verify_the_mac_and_close_the_flow() {
    let mut pr = Pair::tcp();
    handshake(&mut pr);
    pr.up(build::tcp(PEN, S, VIN, D, ISN_EN + 1, ISN_IN + 1, TCP_ACK | TCP_PSH, &[], REQUEST));
    pr.down(build::tcp(PIN, D, PGR, T, ISN_IN + 1, ISN_EN + 1 + REQUEST.len() as u32, TCP_ACK, &[], &[0x42u8; 1400]));
    for fl in [TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK] {
        let p = build::tcp(PEN, S, VIN, D, ISN_EN + 1 + REQUEST.len() as u32, ISN_IN + 1 + 1400, fl, &[], b"");
        let (wire, _) = pr.up(p);
        assert_eq!(wire.len(), 20 + 20 + 16);
    }
    let fs = pr.g.flow(7).unwrap();
    assert_eq!(fs.state, FlowState::Closed, "the RST closed it");
    assert!(fs.c.pkts_in >= 5 && fs.c.pkts_out >= 2);
}

#[test]
fn sack_is_trimmed_when_the_options_are_full() {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 500, 2, TCP_SYN | TCP_ACK, &[], b""));
    // NOP NOP TS(10) NOP NOP SACK 3 blocks (26) = 40 bytes
    let mut o = vec![1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 26];
    o.extend((0..24).map(|i| i as u8));
    assert_eq!(o.len(), 40);
    let (wire, at_in) = pr.up(build::tcp(PEN, S, VIN, D, 2, 501, TCP_ACK, &o, b""));
    assert!(tcp_of(&wire).hlen <= 60);
    let t = tcp_of(&at_in);
    let kinds: Vec<u8> = tcp_options(&at_in[t.off + 20..t.off + t.hlen]).map(|x| x.1).filter(|k| *k != 1).collect();
    assert_eq!(kinds, vec![8]);
}

fn compat_pair() -> Pair {
    let mut a = agent_spec(PROTO_TCP);
    a.compat = true;
    let mut g = gw_spec(PROTO_TCP);
    g.compat = true;
    g.ports = vec![D];
    Pair::new(agent(), gateway(), &a, &g)
}

#[test]
fn compat_mode_keeps_the_length_and_survives_the_home_router() {
    let Pair { mut a, mut g } = compat_pair();
    let data = b"compat mode payload".to_vec();
    let mut p = build::tcp(PEN, S, VIN, D, 10, 0, TCP_SYN, &[], b"");
    let len0 = p.len();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    assert_eq!(p.len(), len0);
    nat(&mut p, true);
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept, "{:?}", g.stats);
    assert!(l4_ok(&p));
    let mut p = build::tcp(PEN, S, VIN, D, 11, 0, TCP_ACK, &[], &data);
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    assert_ne!(payload_of(&p), data);
    nat(&mut p, true);
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    assert_eq!(payload_of(&p), data);
}

#[test]
fn compat_mode_detects_a_changed_payload() {
    let Pair { mut a, mut g } = compat_pair();
    let mut p = build::tcp(PEN, S, VIN, D, 10, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    let mut bad = build::tcp(PEN, S, VIN, D, 11, 0, TCP_ACK, &[], b"compat mode payload");
    assert_eq!(a.process(&mut bad, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut bad, true);
    let l = bad.len();
    bad[l - 1] ^= 1;
    assert_eq!(g.process(&mut bad, Hook::In, Handle::Memory, 1), Verdict::Drop(Reason::BadMac));
}

#[test]
fn fragments_are_dropped_and_counted() {
    let mut pr = Pair::udp();
    let mut p = build::udp(PEN, S, VIN, D, b"frag");
    p[6] = 0x20; // MF
    fix_ip_checksum(&mut p, 20);
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Drop(Reason::Fragment));
    assert_eq!(pr.a.stats.fragments, 1);
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let mut pr = Pair::udp();
    let mut p = vec![0x45, 0, 0];
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Drop(Reason::Malformed));
    assert_eq!(pr.a.stats.malformed, 1);
}
