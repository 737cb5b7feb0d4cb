//! Held packets (agent): the first packets to a VIN wait for the negotiation, are released
//! translated when the VAT entry arrives, or fail with an answer to the application, or expire.

mod common;
use common::*;

fn syn() -> Vec<u8> {
    build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b"")
}

#[test]
fn packets_to_a_vin_without_a_flow_are_held_and_reported_once() {
    let mut a = agent();
    let mut p = syn();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    let mut p = syn();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    assert_eq!(a.events.len(), 1);
    assert!(matches!(a.events[0], Event::Held { proto: PROTO_TCP, src: PEN, sport: S, dst: VIN, dport: D }));
}

#[test]
fn packets_outside_the_vin_range_are_dropped_never_passed_untranslated() {
    let mut a = agent();
    let mut other = build::tcp(PEN, S, 0x0808_0808, 443, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut other, Hook::Out, Handle::Memory, 1), Verdict::Drop(Reason::NoFlow));
}

#[test]
fn adding_the_flow_releases_the_held_packets_translated() {
    let mut a = agent();
    for _ in 0..2 {
        let mut p = syn();
        assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    }
    a.add_flow(&agent_spec(PROTO_TCP), 2).unwrap();
    let out: Vec<OutItem> = a.outbox.drain(..).collect();
    assert_eq!(out.len(), 2);
    for o in &out {
        let b = o.bytes.as_ref().unwrap();
        let ip = parse_ip(b, false).unwrap();
        assert_eq!(ip.dst, GGR);
        assert!(l4_ok(b));
    }
    assert_eq!(a.held_count(), 0);
}

/// An agent holding 3 datagrams to VIN:53 (its per-flow bound).
fn three_held_datagrams() -> Engine {
    let mut a = agent();
    a.cfg.max_held_per_flow = 3;
    for i in 0..3 {
        let mut p = build::udp(PEN, S, VIN, 53, &[i]);
        assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    }
    a
}

#[test]
fn beyond_the_per_flow_bound_packets_are_dropped() {
    let mut a = three_held_datagrams();
    for i in 3..5 {
        let mut p = build::udp(PEN, S, VIN, 53, &[i]);
        assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Drop(Reason::HeldOverflow));
    }
}

#[test]
fn failing_held_datagrams_answers_port_unreachable_once() {
    let mut a = three_held_datagrams();
    let n = a.fail_held((PROTO_UDP, PEN, S, VIN, 53), FailMode::PortUnreachable);
    assert_eq!(n, 3);
    let inj: Vec<&OutItem> = a.outbox.iter().filter(|o| o.injected).collect();
    assert_eq!(inj.len(), 1);
    let icmp = inj[0].bytes.as_ref().unwrap();
    let ip = parse_ip(icmp, false).unwrap();
    assert_eq!((ip.proto, ip.src, ip.dst, icmp[20], icmp[21]), (PROTO_ICMP, VIN, PEN, 3, 3));
    assert!(l4_checksum_ok(icmp, 20, ip.total, PROTO_ICMP));
}

#[test]
fn failing_a_held_syn_answers_a_rst() {
    let mut a = agent();
    let mut p = syn();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    a.outbox.clear();
    assert_eq!(a.fail_held((PROTO_TCP, PEN, S, VIN, D), FailMode::Reset), 1);
    let rst = a.outbox.iter().find(|o| o.injected).unwrap().bytes.clone().unwrap();
    let t = tcp_of(&rst);
    let ip = parse_ip(&rst, false).unwrap();
    assert_eq!((ip.src, t.sport, ip.dst, t.dport, t.flags, t.ack), (VIN, D, PEN, S, TCP_RST | TCP_ACK, 2));
    assert!(l4_ok(&rst));
}

#[test]
fn held_packets_expire() {
    let mut a = agent();
    let mut p = syn();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1000), Verdict::Held);
    a.sweep(1000 + a.cfg.timeouts.held, 10);
    assert_eq!(a.held_count(), 0);
    assert!(a.events.iter().any(|e| matches!(e, Event::HeldExpired { count: 1, .. })));
}

#[test]
fn a_new_connection_on_the_same_tuple_is_held_again_for_new_keys() {
    let mut a = agent();
    a.add_flow(&agent_spec(PROTO_TCP), 1).unwrap();
    let mut p = build::tcp(PEN, S, VIN, D, 1000, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    // SYN retransmission: same ISN, same flow.
    let mut p = build::tcp(PEN, S, VIN, D, 1000, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    // A new connection on the same 5-tuple: the flow is replaced and the SYN held.
    let mut p = build::tcp(PEN, S, VIN, D, 777_777, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    assert!(a.flow(1).is_none());
    assert!(a.events.iter().any(|e| matches!(e, Event::Expired { id: 1, t: T, state: "replaced", .. })));
    assert!(a.events.iter().any(|e| matches!(e, Event::Held { .. })));
}

/// What an agent with no flow does with a TCP segment `flags` to VIN:d.
fn not_first(flags: u8) -> (Engine, Verdict) {
    let mut a = agent();
    let mut p = build::tcp(PEN, S, VIN, D, 5000, 9000, flags, &[], b"late");
    let v = a.process(&mut p, Hook::Out, Handle::Memory, 1);
    (a, v)
}

#[test]
fn a_segment_without_syn_for_an_unknown_connection_is_never_held_and_gets_a_rst() {
    for flags in [TCP_ACK, TCP_FIN | TCP_ACK, TCP_PSH | TCP_ACK] {
        let (a, v) = not_first(flags);
        assert_eq!(v, Verdict::Drop(Reason::NotFirst), "flags {flags:#x}");
        assert_eq!(a.held_count(), 0, "nothing held");
        assert!(a.events.is_empty(), "no held event: TypeScript takes no reservation for it");
        assert_eq!(a.stats.not_first, 1);
        let rst = a.outbox.iter().find(|o| o.injected).expect("a RST to the application").bytes.clone().unwrap();
        let ip = parse_ip(&rst, false).unwrap();
        let t = tcp_of(&rst);
        // RFC 9293 §3.10.7.1: a RST answering an ACK carries the acked number as its seq.
        assert_eq!((ip.src, t.sport, ip.dst, t.dport, t.flags, t.seq), (VIN, D, PEN, S, TCP_RST, 9000));
        assert!(l4_ok(&rst));
    }
}

#[test]
fn a_rst_for_an_unknown_connection_is_dropped_without_an_answer() {
    let (a, v) = not_first(TCP_RST | TCP_ACK);
    assert_eq!(v, Verdict::Drop(Reason::NotFirst));
    assert!(a.outbox.is_empty(), "no answer to a RST");
    assert!(a.events.is_empty());
}

#[test]
fn a_late_segment_on_a_tuple_with_a_held_syn_is_not_held_with_it() {
    let mut a = agent();
    let mut p = syn();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    let mut ack = build::tcp(PEN, S, VIN, D, 2, 1, TCP_ACK, &[], b"");
    assert_eq!(a.process(&mut ack, Hook::Out, Handle::Memory, 1), Verdict::Drop(Reason::NotFirst));
    assert_eq!(a.held_count(), 1, "only the SYN waits");
}

#[test]
fn a_lost_flow_is_reset_even_while_its_application_only_waits_for_data() {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 100, 2, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 101, 2, TCP_ACK, &[], &[7u8; 500]));
    pr.a.outbox.clear();
    assert!(pr.a.reset_flow(1));
    assert_eq!(pr.a.flow_count(), 0, "the flow is gone");
    // the probe: a bare ACK toward the application, half the sequence space from what it got
    let probe = pr.a.outbox.iter().find(|o| o.injected).expect("a probe").bytes.clone().unwrap();
    let (ip, t) = (parse_ip(&probe, false).unwrap(), tcp_of(&probe));
    assert_eq!((ip.src, t.sport, ip.dst, t.dport, t.flags), (VIN, D, PEN, S, TCP_ACK));
    assert_eq!(t.seq, 101u32.wrapping_add(0x8000_0000));
    assert!(l4_ok(&probe));
    // the application's TCP answers it with an ACK of what it has: a RST with exactly that comes back
    pr.a.outbox.clear();
    let mut answer = build::tcp(PEN, S, VIN, D, 2, 601, TCP_ACK, &[], b"");
    assert_eq!(pr.a.process(&mut answer, Hook::Out, Handle::Memory, 3), Verdict::Drop(Reason::NotFirst));
    let rst = pr.a.outbox.iter().find(|o| o.injected).unwrap().bytes.clone().unwrap();
    assert_eq!((tcp_of(&rst).flags, tcp_of(&rst).seq), (TCP_RST, 601));
}

#[test]
fn resetting_an_unknown_flow_says_so() {
    let mut a = agent();
    assert!(!a.reset_flow(42));
}
