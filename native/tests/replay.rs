//! Replay (docs/pccom.md §4.4, engine/conn.rs): a replayed packet never delivers anything twice,
//! while a genuine retransmission still makes the receiving TCP acknowledge again; one connection
//! per flow; the state never moves back; nothing passes after the close.

mod common;
use common::*;

const ISN_EN: u32 = 0x1000_0000;
const ISN_IN: u32 = 0x7000_0000;
const REQUEST: &[u8] = b"GET /secret HTTP/1.1\r\n\r\n";
const LEN: u32 = REQUEST.len() as u32;

fn en(seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    build::tcp(PEN, S, VIN, D, seq, ack, flags, &[], payload)
}

fn inn(seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    build::tcp(PIN, D, PGR, T, seq, ack, flags, &[], payload)
}

/// An established connection that carried REQUEST; returns the pair and REQUEST's wire copy
/// (what an attacker captured), before IN acknowledged it.
fn after_request() -> (Pair, Vec<u8>) {
    let mut pr = Pair::tcp();
    pr.up(en(ISN_EN, 0, TCP_SYN, b""));
    pr.down(inn(ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, b""));
    pr.up(en(ISN_EN + 1, ISN_IN + 1, TCP_ACK, b""));
    let (wire, _) = pr.up(en(ISN_EN + 1, ISN_IN + 1, TCP_ACK | TCP_PSH, REQUEST));
    (pr, wire)
}

fn replay_in(pr: &mut Pair, wire: &[u8]) -> (Verdict, Vec<u8>) {
    let mut p = wire.to_vec();
    let v = pr.g.process(&mut p, Hook::In, Handle::Memory, 3);
    (v, p)
}

#[test]
fn a_replayed_segment_in_flight_is_delivered_whole_for_tcp_to_deduplicate() {
    let (mut pr, wire) = after_request();
    let (v, at_in) = replay_in(&mut pr, &wire);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(payload_of(&at_in), REQUEST.to_vec(), "IN has not acknowledged it yet: TCP itself drops the copy");
}

#[test]
fn once_in_acknowledged_a_segment_its_replay_reaches_in_as_a_bare_header() {
    let (mut pr, wire) = after_request();
    pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK, b""));
    let (v, at_in) = replay_in(&mut pr, &wire);
    assert_eq!(v, Verdict::Accept, "passed, so a genuine retransmission still gets IN's ACK");
    assert!(payload_of(&at_in).is_empty(), "no byte of it reaches IN twice");
    let t = tcp_of(&at_in);
    assert_eq!((t.seq, t.flags & (TCP_PSH | TCP_FIN | TCP_SYN)), (ISN_EN + 1, 0));
    assert!(l4_ok(&at_in));
    assert_eq!(pr.g.stats.drops.get(Reason::OldData), 1);
}

#[test]
fn a_retransmission_in_already_acknowledged_leaves_the_gateway_without_its_payload() {
    let (mut pr, _) = after_request();
    let (_, first) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(payload_of(&first), b"HTTP/1.1 200 OK\r\n".to_vec());
    pr.up(en(ISN_EN + 1 + LEN, ISN_IN + 1 + 17, TCP_ACK, b""));
    // IN did not get EN's ACK and sends the reply again: EN already has it.
    let (wire, at_en) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(wire.len(), 20 + 20 + 16, "no old position is encrypted again");
    assert!(payload_of(&at_en).is_empty());
    assert_eq!(tcp_of(&at_en).seq, ISN_IN + 1, "EN's TCP sees an old segment and acknowledges again");
}

#[test]
fn the_agent_gives_the_application_no_replayed_data_either() {
    let (mut pr, _) = after_request();
    let (wire, _) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, b"HTTP/1.1 200 OK\r\n"));
    pr.up(en(ISN_EN + 1 + LEN, ISN_IN + 1 + 17, TCP_ACK, b""));
    let mut p = wire.clone();
    nat(&mut p, false);
    assert_eq!(pr.a.process(&mut p, Hook::In, Handle::Memory, 3), Verdict::Accept);
    assert!(payload_of(&p).is_empty());
    assert_eq!(pr.a.stats.drops.get(Reason::OldData), 1);
}

#[test]
fn a_replayed_syn_on_an_established_connection_is_refused_and_the_state_stays() {
    let mut pr = Pair::tcp();
    let (syn, _) = pr.up(en(ISN_EN, 0, TCP_SYN, b""));
    pr.down(inn(ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, b""));
    pr.up(en(ISN_EN + 1, ISN_IN + 1, TCP_ACK, b""));
    assert_eq!(replay_in(&mut pr, &syn).0, Verdict::Drop(Reason::SynReplay));
    assert_eq!(pr.g.flow(7).unwrap().state, FlowState::Established);
}

#[test]
fn during_the_handshake_a_retransmitted_syn_reaches_in_again() {
    let mut pr = Pair::tcp();
    let (syn, _) = pr.up(en(ISN_EN, 0, TCP_SYN, b""));
    pr.down(inn(ISN_IN, ISN_EN + 1, TCP_SYN | TCP_ACK, b""));
    let (v, at_in) = replay_in(&mut pr, &syn);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(tcp_of(&at_in).flags & TCP_SYN, TCP_SYN, "IN answers it with its SYN-ACK again");
}

#[test]
fn a_second_connection_on_a_reservation_is_refused() {
    let mut pr = Pair::tcp();
    pr.up(en(ISN_EN, 0, TCP_SYN, b""));
    // The same keys, another ISN (as a second connection on the reservation would be).
    let mut a2 = agent();
    a2.add_flow(&agent_spec(PROTO_TCP), 1).unwrap();
    let mut syn2 = en(ISN_EN + 5000, 0, TCP_SYN, b"");
    assert_eq!(a2.process(&mut syn2, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut syn2, true);
    assert_eq!(replay_in(&mut pr, &syn2).0, Verdict::Drop(Reason::NewConnection));
}

/// The connection closed by both FINs, acknowledged; returns (pair, EN's data wire, EN's FIN wire).
fn closed() -> (Pair, Vec<u8>, Vec<u8>) {
    let (mut pr, data) = after_request();
    let (fin, _) = pr.up(en(ISN_EN + 1 + LEN, ISN_IN + 1, TCP_ACK | TCP_FIN, b""));
    pr.down(inn(ISN_IN + 1, ISN_EN + 2 + LEN, TCP_ACK | TCP_FIN, b""));
    assert_eq!(pr.g.flow(7).unwrap().state, FlowState::Closing);
    pr.up(en(ISN_EN + 2 + LEN, ISN_IN + 2, TCP_ACK, b""));
    assert_eq!(pr.g.flow(7).unwrap().state, FlowState::Closed);
    (pr, data, fin)
}

#[test]
fn after_the_close_replayed_data_and_syns_are_refused() {
    let (mut pr, data, _) = closed();
    assert_eq!(replay_in(&mut pr, &data).0, Verdict::Drop(Reason::Closed));
    let mut syn = en(ISN_EN, 0, TCP_SYN, b"");
    let mut a2 = agent();
    a2.add_flow(&agent_spec(PROTO_TCP), 1).unwrap();
    assert_eq!(a2.process(&mut syn, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut syn, true);
    assert_eq!(replay_in(&mut pr, &syn).0, Verdict::Drop(Reason::Closed));
    assert_eq!(pr.g.flow(7).unwrap().state, FlowState::Closed, "never back to the handshake");
    assert_eq!(pr.g.stats.drops.get(Reason::Closed), 2);
}

#[test]
fn after_the_close_a_retransmitted_fin_still_reaches_in_bare_so_it_can_acknowledge_again() {
    let (mut pr, _, fin) = closed();
    let (v, at_in) = replay_in(&mut pr, &fin);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(tcp_of(&at_in).flags & TCP_FIN, 0);
    assert!(payload_of(&at_in).is_empty());
}

#[test]
fn a_rst_closes_the_connection_and_nothing_passes_after_it() {
    let (mut pr, data) = after_request();
    pr.up(en(ISN_EN + 1 + LEN, ISN_IN + 1, TCP_RST | TCP_ACK, b""));
    assert_eq!(pr.g.flow(7).unwrap().state, FlowState::Closed);
    assert_eq!(replay_in(&mut pr, &data).0, Verdict::Drop(Reason::Closed));
}

#[test]
fn a_lan_host_sending_zeros_at_an_old_position_learns_no_keystream() {
    // The keystream attack of issue 10: IN's reply is captured on the internet; a LAN host then
    // sends, as IN, zeros at the same sequence number before EN acknowledged the reply.
    let (mut pr, _) = after_request();
    let secret = b"the quarterly numbers are ...".to_vec();
    let (captured, _) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, &secret));
    let zeros = vec![0u8; secret.len()];
    let (emitted, _) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, &zeros));
    // Zeros encrypt to a keystream, but of another synthetic IV: XOR with the capture is garbage.
    let ks = payload_of(&emitted);
    let guess: Vec<u8> = payload_of(&captured).iter().zip(ks.iter()).map(|(c, k)| c ^ k).collect();
    assert_ne!(guess, secret);
    let same = guess.iter().zip(secret.iter()).filter(|(a, b)| a == b).count();
    assert!(same < 8, "{} of {} bytes recovered", same, secret.len());
    // Once EN acknowledged the reply, that position is never encrypted again at all.
    pr.up(en(ISN_EN + 1 + LEN, ISN_IN + 1 + secret.len() as u32, TCP_ACK, b""));
    let (late, _) = pr.down(inn(ISN_IN + 1, ISN_EN + 1 + LEN, TCP_ACK | TCP_PSH, &zeros));
    assert!(payload_of(&late).is_empty());
}
