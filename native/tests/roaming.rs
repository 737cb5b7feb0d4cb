//! Roaming (docs/pccom.md §6.1): a bound flow follows EN's new public address and port once a
//! packet from there verifies and is newer than anything accepted; a replay never is, so it
//! cannot drag a flow away. Probes: the agent's engine makes them (on request, as NAT keepalive,
//! on a quiet TCP flow), the gateway verifies, re-binds on and consumes them.
mod common;
use common::*;

/// The home router after it lost its mapping: EN's PEN:s now leaves as GHR2:M2.
const GHR2: u32 = 0xc633_6408; // 198.51.100.8
const M2: u16 = 51234;
const ATTACKER: u32 = 0xcb00_7142; // 203.0.113.66

/// The home router's new mapping for an outbound packet (full checksums: the test's NAT).
fn renat(p: &mut Vec<u8>, ghr: u32, m: u16) {
    let ip = parse_ip(p, false).unwrap();
    let (dst, dport) = (be32(p, 16), be16(p, ip.ihl + 2));
    rewrite(p, ip.ihl, ip.proto, ghr, m, dst, dport);
}

/// EN's packet protected by the agent, leaving the home router from `ghr:m`.
fn out_via(pr: &mut Pair, mut p: Vec<u8>, ghr: u32, m: u16) -> Vec<u8> {
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 5), Verdict::Accept);
    renat(&mut p, ghr, m);
    p
}

fn gw_in(pr: &mut Pair, p: &[u8]) -> Verdict {
    let mut q = p.to_vec();
    pr.g.process(&mut q, Hook::In, Handle::Memory, 5)
}

/// A TCP connection through the pair: handshake, then 100 bytes each way (EN ISN 100, IN 900).
fn established() -> Pair {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 100, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 900, 101, TCP_SYN | TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, 101, 901, TCP_ACK, &[], b""));
    pr.up(build::tcp(PEN, S, VIN, D, 101, 901, TCP_ACK | TCP_PSH, &[], &[7u8; 100]));
    pr.down(build::tcp(PIN, D, PGR, T, 901, 201, TCP_ACK | TCP_PSH, &[], &[9u8; 100]));
    pr.up(build::tcp(PEN, S, VIN, D, 201, 1001, TCP_ACK, &[], b""));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR, m: M }));
    pr.g.events.clear();
    pr
}

/// Where the gateway sends IN's next segment.
fn downstream_dst(pr: &mut Pair, seq: u32) -> (u32, u16) {
    let mut p = build::tcp(PIN, D, PGR, T, seq, 201, TCP_ACK | TCP_PSH, &[], &[1u8; 10]);
    assert_eq!(pr.g.process(&mut p, Hook::Out, Handle::Memory, 5), Verdict::Accept);
    let ip = parse_ip(&p, false).unwrap();
    (ip.dst, be16(&p, ip.ihl + 2))
}

#[test]
fn a_newer_verified_segment_from_a_new_source_moves_the_binding_and_the_downstream_follows() {
    let mut pr = established();
    // IN's segment 1001..1101 is lost at the old mapping; EN acknowledges what it had and more.
    let ack = out_via(&mut pr, build::tcp(PEN, S, VIN, D, 201, 1001, TCP_ACK | TCP_PSH, &[], b"new data"), GHR2, M2);
    assert_eq!(gw_in(&mut pr, &ack), Verdict::Accept);
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR2, m: M2 }));
    assert!(matches!(pr.g.events.as_slice(), [Event::Bound { ghr: GHR2, m: M2, .. }]), "{:?}", pr.g.events);
    assert_eq!(pr.g.stats.roamed, 1);
    assert_eq!(downstream_dst(&mut pr, 1001), (GHR2, M2));
}

#[test]
fn a_replay_from_a_new_source_cannot_move_the_binding() {
    let mut pr = established();
    let seg = out_via(&mut pr, build::tcp(PEN, S, VIN, D, 201, 1001, TCP_ACK | TCP_PSH, &[], b"abc"), GHR, M);
    assert_eq!(gw_in(&mut pr, &seg), Verdict::Accept);
    // The same segment (and an older one) replayed from elsewhere: not newer, refused before any crypto.
    let mut replay = seg.clone();
    renat(&mut replay, ATTACKER, 4444);
    assert_eq!(gw_in(&mut pr, &replay), Verdict::Drop(Reason::WrongSource));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR, m: M }));
    assert_eq!(pr.g.stats.roamed, 0);
    assert!(pr.g.events.iter().all(|e| !matches!(e, Event::Bound { .. })));
    assert_eq!(downstream_dst(&mut pr, 1001), (GHR, M));
}

#[test]
fn a_forged_newer_segment_from_a_new_source_fails_verification_and_moves_nothing() {
    let mut pr = established();
    let mut forged = out_via(&mut pr, build::tcp(PEN, S, VIN, D, 201, 1001, TCP_ACK | TCP_PSH, &[], b"abc"), ATTACKER, 4444);
    // Claims a newer position (ack beyond anything) but its MAC no longer matches.
    put32(&mut forged, 20 + 8, 5000);
    renat(&mut forged, ATTACKER, 4444);
    assert_eq!(gw_in(&mut pr, &forged), Verdict::Drop(Reason::BadMac));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR, m: M }));
}

/// The agent's probe for flow 1, taken from its outbox.
fn take_probe(a: &mut Engine) -> Vec<u8> {
    let items: Vec<_> = a.outbox.drain(..).collect();
    assert_eq!(items.len(), 1, "one probe");
    assert!(items[0].injected && items[0].hook == Hook::Out);
    items[0].bytes.clone().unwrap()
}

#[test]
fn a_tcp_probe_moves_the_binding_is_consumed_and_a_replayed_probe_moves_nothing() {
    let mut pr = established();
    assert!(pr.a.probe(1, 6));
    let mut probe = take_probe(&mut pr.a);
    assert!(l4_ok(&probe));
    let ip = parse_ip(&probe, false).unwrap();
    assert_eq!((ip.src, ip.dst, be16(&probe, 20 + 2)), (PEN, GGR, T));
    let t = tcp_of(&probe);
    assert_eq!((t.flags, t.end - t.payload), (TCP_ACK, 0), "a bare ACK");
    assert_eq!((t.seq, t.ack), (201, 1001), "at the connection's current position");
    renat(&mut probe, GHR2, M2);
    let delivered_before = pr.g.stats.translated_in;
    assert_eq!(gw_in(&mut pr, &probe), Verdict::Drop(Reason::Probe), "consumed: IN never sees it");
    assert_eq!(pr.g.stats.translated_in, delivered_before);
    assert_eq!(pr.g.stats.probes_received, 1);
    assert_eq!(pr.g.stats.dropped, 0, "a probe is no drop");
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR2, m: M2 }));
    assert_eq!(downstream_dst(&mut pr, 1001), (GHR2, M2));
    // The same probe again, from the attacker or from EN's current mapping: not newer.
    let mut replay = probe.clone();
    renat(&mut replay, ATTACKER, 4444);
    assert_eq!(gw_in(&mut pr, &replay), Verdict::Drop(Reason::WrongSource));
    assert_eq!(gw_in(&mut pr, &probe), Verdict::Drop(Reason::Replay));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR2, m: M2 }));
    // The next probe is newer and verifies from the current mapping too.
    assert_eq!(pr.a.probe_all(7), 1);
    let mut next = take_probe(&mut pr.a);
    renat(&mut next, GHR2, M2);
    assert_eq!(gw_in(&mut pr, &next), Verdict::Drop(Reason::Probe));
    assert_eq!(pr.g.stats.probes_received, 2);
}

#[test]
fn the_application_stream_is_undisturbed_by_probes() {
    let mut pr = established();
    assert!(pr.a.probe(1, 6));
    let mut probe = take_probe(&mut pr.a);
    renat(&mut probe, GHR, M);
    assert_eq!(gw_in(&mut pr, &probe), Verdict::Drop(Reason::Probe));
    // Both directions go on at the same positions, verified.
    let (_, to_in) = pr.up(build::tcp(PEN, S, VIN, D, 201, 1001, TCP_ACK | TCP_PSH, &[], b"after"));
    assert_eq!(payload_of(&to_in), b"after");
    let (_, to_en) = pr.down(build::tcp(PIN, D, PGR, T, 1001, 206, TCP_ACK | TCP_PSH, &[], b"reply"));
    assert_eq!(payload_of(&to_en), b"reply");
}

#[test]
fn no_probe_before_the_connection_is_established_or_after_it_closed() {
    let mut pr = Pair::tcp();
    assert!(!pr.a.probe(1, 2), "no connection yet");
    pr.up(build::tcp(PEN, S, VIN, D, 100, 0, TCP_SYN, &[], b""));
    assert!(!pr.a.probe(1, 2), "handshake");
    let mut pr = established();
    pr.up(build::tcp(PEN, S, VIN, D, 201, 1001, TCP_RST | TCP_ACK, &[], b""));
    assert!(!pr.a.probe(1, 6), "closed");
    assert!(!pr.g.probe(7, 6), "the gateway makes none");
    assert!(pr.a.outbox.is_empty());
}

#[test]
fn udp_a_newer_datagram_or_probe_from_a_new_source_moves_the_binding_a_replay_does_not() {
    let mut pr = Pair::udp();
    let (first, _) = pr.up(build::udp(PEN, S, VIN, D, b"one"));
    pr.down(build::udp(PIN, D, PGR, T, b"ans"));
    // A replay of datagram 1 from elsewhere: not newer.
    let mut replay = first.clone();
    renat(&mut replay, ATTACKER, 4444);
    assert_eq!(gw_in(&mut pr, &replay), Verdict::Drop(Reason::WrongSource));
    // Datagram 2 from the new mapping: newer, verified, delivered, the binding moves.
    let two = out_via(&mut pr, build::udp(PEN, S, VIN, D, b"two"), GHR2, M2);
    let mut q = two.clone();
    assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 5), Verdict::Accept);
    assert_eq!(payload_of(&q), b"two");
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR2, m: M2 }));
    // A probe from a third mapping: an empty datagram with d = 0, consumed.
    assert!(pr.a.probe(1, 6));
    let mut probe = take_probe(&mut pr.a);
    assert!(l4_ok(&probe));
    renat(&mut probe, GHR, M);
    assert_eq!(gw_in(&mut pr, &probe), Verdict::Drop(Reason::Probe));
    assert_eq!(pr.g.flow(7).unwrap().binding, Some(Binding { ghr: GHR, m: M }));
    assert_eq!(pr.g.stats.roamed, 2);
    // Datagram 2 replayed from its old mapping: older than the probe now.
    assert_eq!(gw_in(&mut pr, &two), Verdict::Drop(Reason::WrongSource));
}

fn agent_with(keepalive: u64, quiet: u64) -> Engine {
    let mut c = agent_config();
    c.timeouts.keepalive = keepalive;
    c.timeouts.quiet_probe = quiet;
    Engine::new(c)
}

#[test]
fn keepalive_probes_go_while_the_flow_is_live_and_do_not_keep_it_alive() {
    let mut c = agent_config();
    c.timeouts.keepalive = 1000;
    c.timeouts.quiet_probe = 0;
    c.timeouts.udp_idle = 5000;
    let mut pr = Pair::new(Engine::new(c), gateway(), &agent_spec(PROTO_UDP), &gw_spec(PROTO_UDP));
    pr.up(build::udp(PEN, S, VIN, D, b"one")); // at t = 2
    pr.a.sweep(900, 100);
    assert!(pr.a.outbox.is_empty(), "not due yet");
    let mut sent = 0;
    for now in (1002..=4802).step_by(100) {
        pr.a.sweep(now, 100);
        for it in pr.a.outbox.drain(..) {
            let mut p = it.bytes.unwrap();
            renat(&mut p, GHR, M);
            assert_eq!(pr.g.process(&mut p, Hook::In, Handle::Memory, now), Verdict::Drop(Reason::Probe));
            sent += 1;
        }
    }
    assert_eq!(sent, 4, "one per second of silence (1002, 2002, 3002, 4002)");
    assert_eq!(pr.a.stats.probes_sent, 4);
    // Probes are not the flow's traffic: it still expires after udpIdle, and probes stop.
    pr.a.sweep(5002, 100);
    assert!(pr.a.flow(1).is_none(), "expired");
    pr.a.sweep(9000, 100);
    assert!(pr.a.outbox.is_empty());
}

#[test]
fn a_quiet_tcp_flow_is_probed_for_ten_seconds_then_only_kept_alive() {
    let mut pr = {
        let mut fresh = Pair::new(agent_with(25_000, 500), gateway(), &agent_spec(PROTO_TCP), &gw_spec(PROTO_TCP));
        fresh.up(build::tcp(PEN, S, VIN, D, 100, 0, TCP_SYN, &[], b""));
        fresh.down(build::tcp(PIN, D, PGR, T, 900, 101, TCP_SYN | TCP_ACK, &[], b""));
        fresh.up(build::tcp(PEN, S, VIN, D, 101, 901, TCP_ACK, &[], b"")); // last traffic at t = 2
        fresh
    };
    let mut at = Vec::new();
    for now in (100..=36_000).step_by(100) {
        pr.a.sweep(now, 100);
        if !pr.a.outbox.is_empty() {
            pr.a.outbox.clear();
            at.push(now);
        }
    }
    let quiet: Vec<_> = at.iter().filter(|&&t| t < 10_002).collect();
    assert_eq!(quiet.len(), 19, "every 500 ms from 0.5 s to 9.5 s: {:?}", at);
    assert_eq!(*quiet[0], 600, "first once the flow was quiet 500 ms (sweeps every 100 ms)");
    let later: Vec<_> = at.iter().filter(|&&t| t >= 10_002).collect();
    assert_eq!(later, vec![&34_600], "then the keepalive, 25 s after the last probe (9.6 s)");
}
