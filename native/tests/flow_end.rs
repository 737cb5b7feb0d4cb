//! What the gateway's audit line takes from the engine when a flow ends: how its traffic ended
//! (FIN, RST, verification failures, none) and its counters, payload bytes apart from whole
//! packets, in `flow()` while it lives and in the `expired` event when the engine ends it.

mod common;
use common::*;

const ID: u32 = 7; // the gateway's flow (gw_spec)

/// A TCP pair through the handshake: SYN up, SYN-ACK down, ACK up.
fn established() -> Pair {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 100, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 500, 101, TCP_SYN | TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, 101, 501, TCP_ACK, &[], b""));
    pr
}

fn close_of(g: &Engine) -> Close {
    g.flow(ID).expect("the gateway's flow").close
}

#[test]
fn payload_bytes_are_counted_apart_from_whole_packets_in_each_direction() {
    let mut pr = established();
    pr.up(build::tcp(PEN, S, VIN, D, 101, 501, TCP_ACK | TCP_PSH, &[], &[b'q'; 100]));
    pr.down(build::tcp(PIN, D, PGR, T, 501, 201, TCP_ACK | TCP_PSH, &[], &[b'a'; 1000]));
    pr.down(build::tcp(PIN, D, PGR, T, 1501, 201, TCP_ACK | TCP_PSH, &[], &[b'b'; 300]));
    let c = pr.g.flow(ID).unwrap().c;
    // At the gateway, `in` = from EN toward IN, `out` = from IN toward EN.
    assert_eq!((c.pkts_in, c.payload_in), (3, 100));
    assert_eq!((c.pkts_out, c.payload_out), (3, 1300));
    // Whole packets: at least an IP and a TCP header each on top of the payload.
    assert!(c.bytes_in >= c.payload_in + 40 * c.pkts_in, "{:?}", c);
    assert!(c.bytes_out >= c.payload_out + 40 * c.pkts_out, "{:?}", c);
}

#[test]
fn a_udp_flow_counts_its_datagrams_payload() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, &[1; 33]));
    pr.down(build::udp(PIN, D, PGR, T, &[2; 444]));
    let c = pr.g.flow(ID).unwrap().c;
    assert_eq!((c.payload_in, c.payload_out), (33, 444));
    assert_eq!(pr.g.flow(ID).unwrap().close, Close::None);
}

#[test]
fn a_flow_without_fin_or_rst_has_no_close_signal() {
    let pr = established();
    assert_eq!(close_of(&pr.g), Close::None);
}

#[test]
fn a_fin_from_either_end_is_recorded_as_fin() {
    let mut pr = established();
    pr.down(build::tcp(PIN, D, PGR, T, 501, 101, TCP_ACK | TCP_FIN, &[], b""));
    assert_eq!(close_of(&pr.g), Close::Fin);
    let mut pr = established();
    pr.up(build::tcp(PEN, S, VIN, D, 101, 501, TCP_ACK | TCP_FIN, &[], b""));
    assert_eq!(close_of(&pr.g), Close::Fin);
}

#[test]
fn a_rst_is_recorded_as_rst_even_after_a_fin() {
    let mut pr = established();
    pr.up(build::tcp(PEN, S, VIN, D, 101, 501, TCP_ACK | TCP_FIN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 501, 102, TCP_RST, &[], b""));
    assert_eq!(close_of(&pr.g), Close::Rst);
    // ... and one from EN's side too.
    let mut pr = established();
    pr.up(build::tcp(PEN, S, VIN, D, 101, 501, TCP_ACK | TCP_RST, &[], b""));
    assert_eq!(close_of(&pr.g), Close::Rst);
}

/// A packet from EN's side, protected, then one byte of its payload flipped on the way.
fn forged_up(pr: &mut Pair, seq: u32) -> Verdict {
    let mut p = build::tcp(PEN, S, VIN, D, seq, 501, TCP_ACK | TCP_PSH, &[], b"payload");
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    nat(&mut p, true);
    let n = p.len();
    p[n - 1] ^= 0x40;
    pr.g.process(&mut p, Hook::In, Handle::Memory, 3)
}

#[test]
fn the_last_packet_failing_verification_is_recorded_until_one_verifies() {
    let mut pr = established();
    assert!(matches!(forged_up(&mut pr, 101), Verdict::Drop(_)));
    assert_eq!(close_of(&pr.g), Close::VerifyFailed);
    pr.up(build::tcp(PEN, S, VIN, D, 108, 501, TCP_ACK, &[], b""));
    assert_eq!(close_of(&pr.g), Close::None, "a packet that verified clears it");
}

#[test]
fn a_fin_outranks_a_later_verification_failure() {
    let mut pr = established();
    pr.down(build::tcp(PIN, D, PGR, T, 501, 101, TCP_ACK | TCP_FIN, &[], b""));
    assert!(matches!(forged_up(&mut pr, 101), Verdict::Drop(_)));
    assert_eq!(close_of(&pr.g), Close::Fin);
}

#[test]
fn the_expired_event_carries_the_close_signal_and_the_final_counters() {
    let mut pr = established();
    pr.g.cfg.timeouts.tcp_closing = 100;
    pr.down(build::tcp(PIN, D, PGR, T, 501, 101, TCP_ACK | TCP_PSH, &[], &[b'x'; 250]));
    pr.down(build::tcp(PIN, D, PGR, T, 751, 101, TCP_ACK | TCP_FIN, &[], b""));
    pr.g.events.clear();
    pr.g.sweep(200, 100);
    assert_eq!(pr.g.flow_count(), 0);
    match &pr.g.events[..] {
        [Event::Expired { id: ID, state: "closing", close: "fin", c, .. }] => {
            assert_eq!((c.pkts_out, c.payload_out), (3, 250));
            assert_eq!((c.pkts_in, c.payload_in), (2, 0));
        }
        e => panic!("expected one expired event, got {:?}", e),
    }
}
