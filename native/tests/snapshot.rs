//! Flow snapshots (engine/snapshot.rs): a TCP flow goes on after its daemon restarts with a new
//! engine that imported the flow's spec and snapshot - also from a snapshot older than the flow;
//! a snapshot that does not fit is refused with a reason.
mod common;
use common::*;

/// A TCP flow after its handshake and some data both ways.
fn established() -> Pair {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1000, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 5000, 1001, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    pr.up(build::tcp(PEN, S, VIN, D, 1001, 5001, TCP_ACK, &[], b"GET / HTTP/1.1\r\n\r\n"));
    pr.down(build::tcp(PIN, D, PGR, T, 5001, 1019, TCP_ACK, &[], &[9u8; 1000]));
    pr
}

fn snap_of(e: &Engine, id: u32) -> Vec<u8> {
    e.snapshots().into_iter().find(|(i, _)| *i == id).expect("a snapshot").1
}

#[test]
fn a_gateway_restarted_from_a_snapshot_carries_the_flow_both_ways() {
    let mut pr = established();
    let snap = snap_of(&pr.g, 7);
    pr.g = gateway();
    pr.g.import_flow(&gw_spec(PROTO_TCP), &snap, 5).unwrap();
    let info = pr.g.flow(7).unwrap();
    assert_eq!((info.state, info.d, info.binding), (FlowState::Established, D, Some(Binding { ghr: GHR, m: M })));
    let (_, at_en) = pr.down(build::tcp(PIN, D, PGR, T, 6001, 1019, TCP_ACK, &[], &[8u8; 700]));
    assert_eq!(payload_of(&at_en), vec![8u8; 700]);
    let (_, at_in) = pr.up(build::tcp(PEN, S, VIN, D, 1019, 6701, TCP_ACK, &[], b"more"));
    assert_eq!(payload_of(&at_in), b"more".to_vec());
}

#[test]
fn an_agent_restarted_from_a_snapshot_carries_the_flow_both_ways() {
    let mut pr = established();
    let snap = snap_of(&pr.a, 1);
    pr.a = agent();
    pr.a.import_flow(&agent_spec(PROTO_TCP), &snap, 5).unwrap();
    assert_eq!(pr.a.flow(1).unwrap().state, FlowState::Established, "not back to a handshake (which times out in 30 s)");
    let (_, at_en) = pr.down(build::tcp(PIN, D, PGR, T, 6001, 1019, TCP_ACK, &[], &[8u8; 700]));
    assert_eq!(payload_of(&at_en), vec![8u8; 700]);
    pr.up(build::tcp(PEN, S, VIN, D, 1019, 6701, TCP_ACK, &[], b"more"));
    // the ISN came back too: the same SYN again is not a new connection
    let mut syn = build::tcp(PEN, S, VIN, D, 1000, 0, TCP_SYN, &SYN_OPTS, b"");
    assert_eq!(pr.a.process(&mut syn, Hook::Out, Handle::Memory, 6), Verdict::Accept);
}

#[test]
fn a_snapshot_older_than_the_flow_still_carries_it() {
    let mut pr = established();
    let snap = snap_of(&pr.g, 7);
    // 3 MB more each way after the snapshot, as in the half second before a crash
    let mut seq_in = 6001u32;
    for _ in 0..3000 {
        pr.down(build::tcp(PIN, D, PGR, T, seq_in, 1019, TCP_ACK, &[], &[1u8; 1000]));
        seq_in = seq_in.wrapping_add(1000);
    }
    pr.g = gateway();
    pr.g.import_flow(&gw_spec(PROTO_TCP), &snap, 5).unwrap();
    let (_, at_en) = pr.down(build::tcp(PIN, D, PGR, T, seq_in, 1019, TCP_ACK, &[], &[3u8; 500]));
    assert_eq!(payload_of(&at_en), vec![3u8; 500]);
    let (_, at_in) = pr.up(build::tcp(PEN, S, VIN, D, 1019, seq_in + 500, TCP_ACK, &[], b"ack"));
    assert_eq!(payload_of(&at_in), b"ack".to_vec());
}

#[test]
fn a_snapshot_carries_the_sequence_extension_across_a_wrap() {
    let mut pr = Pair::tcp();
    let isn = 0xffff_f000u32;
    pr.up(build::tcp(PEN, S, VIN, D, 1000, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, isn, 1001, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    pr.up(build::tcp(PEN, S, VIN, D, 1001, isn.wrapping_add(1), TCP_ACK, &[], b""));
    let mut seq = isn.wrapping_add(1);
    for _ in 0..8 {
        pr.down(build::tcp(PIN, D, PGR, T, seq, 1001, TCP_ACK, &[], &[5u8; 1000]));
        seq = seq.wrapping_add(1000);
    }
    let before = pr.g.snapshots();
    pr.g = gateway();
    pr.g.import_flow(&gw_spec(PROTO_TCP), &before[0].1, 5).unwrap();
    pr.a = { let s = snap_of(&pr.a, 1); let mut a = agent(); a.import_flow(&agent_spec(PROTO_TCP), &s, 5).unwrap(); a };
    let (_, at_en) = pr.down(build::tcp(PIN, D, PGR, T, seq, 1001, TCP_ACK, &[], &[6u8; 300]));
    assert_eq!(payload_of(&at_en), vec![6u8; 300], "past the 2^32 wrap on both sides");
}

#[test]
fn udp_flows_and_unbound_reservations_have_no_snapshot() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"q"));
    assert!(pr.a.snapshots().is_empty());
    assert!(pr.g.snapshots().is_empty());
    let mut g = gateway();
    g.add_flow(&gw_spec(PROTO_TCP), 1).unwrap();
    assert!(g.snapshots().is_empty(), "nothing to carry before it binds");
}

#[test]
fn a_snapshot_that_does_not_fit_is_refused_with_a_reason() {
    let pr = established();
    let (gs, asn) = (snap_of(&pr.g, 7), snap_of(&pr.a, 1));
    let refused = |e: &mut Engine, spec: &FlowSpec, s: &[u8]| e.import_flow(spec, s, 1).unwrap_err();
    assert!(refused(&mut agent(), &agent_spec(PROTO_TCP), &gs).contains("bytes"), "the gateway's snapshot at the agent");
    let mut wrong_role = asn.clone();
    wrong_role[1] = 1;
    assert!(refused(&mut agent(), &agent_spec(PROTO_TCP), &wrong_role).contains("other role"));
    assert!(refused(&mut gateway(), &gw_spec(PROTO_TCP), &gs[..20]).contains("bytes"));
    let mut v2 = gs.clone();
    v2[0] = 2;
    assert!(refused(&mut gateway(), &gw_spec(PROTO_TCP), &v2).contains("format"));
    assert!(refused(&mut gateway(), &FlowSpec { t: T + 1, ..gw_spec(PROTO_TCP) }, &gs).contains("ports"));
    assert!(refused(&mut gateway(), &FlowSpec { ports: vec![22], ..gw_spec(PROTO_TCP) }, &gs).contains("does not allow"));
    assert!(refused(&mut gateway(), &gw_spec(PROTO_UDP), &gs).contains("TCP"));
    let mut g = gateway();
    g.add_flow(&gw_spec(PROTO_TCP), 1).unwrap();
    assert!(refused(&mut g, &gw_spec(PROTO_TCP), &gs).contains("exists"), "the id is taken");
    assert_eq!(gateway().snapshots().len(), 0);
}

#[test]
fn a_snapshot_read_back_is_the_same_snapshot() {
    let pr = established();
    for (mut e, spec, id) in [(gateway(), gw_spec(PROTO_TCP), 7), (agent(), agent_spec(PROTO_TCP), 1)] {
        let s = snap_of(if id == 7 { &pr.g } else { &pr.a }, id);
        e.import_flow(&spec, &s, 1).unwrap();
        assert_eq!(snap_of(&e, id), s);
    }
}
