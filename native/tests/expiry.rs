//! Flows expire by state; an expired reservation frees its port.

mod common;
use common::*;

#[test]
fn an_unbound_reservation_expires_after_its_timeout() {
    let mut g = gateway();
    g.cfg.timeouts.reservation = 50;
    let mut s = gw_spec(PROTO_UDP);
    s.id = 9;
    g.add_flow(&s, 1).unwrap();
    g.sweep(40, 100);
    assert_eq!(g.flow_count(), 1);
    g.sweep(60, 100);
    assert_eq!(g.flow_count(), 0);
    assert!(matches!(g.events[0], Event::Expired { id: 9, proto: PROTO_UDP, t: T, state: "reserved", close: "none", .. }));
}

/// A pair whose gateway flow bound at t = 2 and is in the TCP handshake (timeout 100 ms).
fn bound_in_handshake() -> Pair {
    let mut pr = Pair::tcp();
    pr.g.cfg.timeouts.tcp_handshake = 100;
    pr.g.cfg.timeouts.reservation = 50;
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &[], b""));
    pr
}

#[test]
fn a_bound_flow_in_the_handshake_expires_by_the_handshake_timeout() {
    let mut pr = bound_in_handshake();
    pr.g.sweep(90, 10);
    assert_eq!(pr.g.flow_count(), 1);
    pr.g.sweep(103, 10);
    assert_eq!(pr.g.flow_count(), 0);
}

#[test]
fn an_expired_flow_frees_its_port_for_a_new_reservation() {
    let mut pr = bound_in_handshake();
    pr.g.sweep(103, 10);
    pr.g.add_flow(&gw_spec(PROTO_TCP), 200).unwrap();
}

/// A connection carried through both engines up to FIN from EN (closing timeout 120 s, closed 5 s).
fn half_closed_by_en() -> Pair {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 100, 2, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    pr.up(build::tcp(PEN, S, VIN, D, 2, 101, TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, 2, 101, TCP_FIN | TCP_ACK, &[], b""));
    pr
}

#[test]
fn a_half_closed_connection_keeps_the_closing_timeout() {
    let mut pr = half_closed_by_en();
    // quiet for 60 s after EN's FIN: IN may still send (a half-closed connection)
    pr.g.sweep(60_000, 10);
    pr.a.sweep(60_000, 10);
    assert_eq!((pr.g.flow_count(), pr.a.flow_count()), (1, 1));
}

#[test]
fn a_closed_connection_frees_its_flow_after_the_closed_timeout() {
    let mut pr = half_closed_by_en();
    pr.down(build::tcp(PIN, D, PGR, T, 101, 3, TCP_FIN | TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, 3, 102, TCP_ACK, &[], b""));
    pr.g.sweep(2 + 4_000, 10);
    pr.a.sweep(2 + 4_000, 10);
    assert_eq!((pr.g.flow_count(), pr.a.flow_count()), (1, 1), "the last ACK may still come");
    pr.g.sweep(2 + 5_000, 10);
    pr.a.sweep(2 + 5_000, 10);
    assert_eq!((pr.g.flow_count(), pr.a.flow_count()), (0, 0));
    assert!(pr.g.events.iter().any(|e| matches!(e, Event::Expired { id: 7, state: "closed", .. })));
}

#[test]
fn a_reset_connection_is_closed() {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 100, 2, TCP_RST | TCP_ACK, &[], b""));
    pr.g.sweep(2 + 5_000, 10);
    pr.a.sweep(2 + 5_000, 10);
    assert_eq!((pr.g.flow_count(), pr.a.flow_count()), (0, 0));
}
