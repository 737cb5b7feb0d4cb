//! Gateway reservations: what binds one (an initial SYN or a datagram that verifies, to an allowed
//! port), and that after binding only the bound source on the internet and only PIN:d on the LAN
//! may use it.

mod common;
use common::*;

/// A gateway reservation of t for PIN that allows d = 22 and 443 only.
fn gateway_22_443() -> Engine {
    let mut g = gateway();
    let mut spec = gw_spec(PROTO_TCP);
    spec.ports = vec![22, 443];
    g.add_flow(&spec, 1).unwrap();
    g
}

/// An agent whose VAT entry is `spec`, protecting one segment; returns it after the home router.
fn protected(spec: FlowSpec, p: Vec<u8>) -> Vec<u8> {
    let mut a = agent();
    a.add_flow(&spec, 1).unwrap();
    let mut p = p;
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    p
}

fn agent_spec_d(d: u16) -> FlowSpec {
    FlowSpec { d, ..agent_spec(PROTO_TCP) }
}

#[test]
fn a_port_outside_the_reservation_is_denied() {
    let mut g = gateway_22_443();
    let mut p = protected(agent_spec(PROTO_TCP), build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &[], b"")); // d = 80
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("port-denied"));
}

#[test]
fn a_syn_under_other_keys_fails_verification() {
    let mut g = gateway_22_443();
    let wrong = FlowSpec { tx: keys(9), ..agent_spec_d(22) };
    let mut p = protected(wrong, build::tcp(PEN, S, VIN, 22, 1, 0, TCP_SYN, &[], b""));
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
}

#[test]
fn only_an_initial_syn_can_bind() {
    let mut g = gateway_22_443();
    let mut p = protected(agent_spec_d(22), build::tcp(PEN, S, VIN, 22, 1, 5, TCP_ACK, &[], b"x"));
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
}

#[test]
fn an_unreserved_port_has_no_flow() {
    let mut g = gateway_22_443();
    let mut p = build::tcp(GHR, M, GGR, T + 1, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("no-flow"));
}

#[test]
fn after_binding_another_source_is_refused() {
    let mut g = gateway_22_443();
    let mut p = protected(agent_spec_d(22), build::tcp(PEN, S, VIN, 22, 100, 0, TCP_SYN, &[], b""));
    let mut p2 = p.clone();
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    assert_eq!(g.stats.bound, 1);
    put32(&mut p2, 12, GHR + 1);
    fix_ip_checksum(&mut p2, 20);
    assert_eq!(g.process(&mut p2, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
    assert_eq!(g.stats.wrong_source, 1);
}

#[test]
fn on_the_lan_only_pin_d_may_send_to_pgr_t() {
    let mut g = gateway_22_443();
    let mut p = protected(agent_spec_d(22), build::tcp(PEN, S, VIN, 22, 100, 0, TCP_SYN, &[], b""));
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    let mut l = build::tcp(PIN + 1, 22, PGR, T, 1, 101, TCP_SYN | TCP_ACK, &[], b"");
    assert_eq!(g.process(&mut l, Hook::Out, Handle::Memory, 1), Verdict::Drop("wrong-source"));
}
