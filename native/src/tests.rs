//! Engine-level tests: every rewrite direction through a simulated home NAT, the PCCOM
//! construction (golden packets, wrap, retransmission, re-segmentation, tampering, replay),
//! held packets, reservations, expiry, ICMP errors, compat mode, punts.

fn hex(s: &str) -> Vec<u8> { (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect() }
use crate::engine::*;
use crate::pccom::{self, DirKeys};
use crate::pkt::build;
use crate::pkt::*;

const PEN: u32 = 0xc0a8_010a; // 192.168.1.10
const S: u16 = 40000;
const VIN: u32 = 0x6440_0005; // 100.64.0.5
const D: u16 = 80;
const GGR: u32 = 0xcb00_7101; // 203.0.113.1
const T: u16 = 20001;
const GHR: u32 = 0xc633_6407; // 198.51.100.7
const M: u16 = 61000;
const PGR: u32 = 0x0a00_0001; // 10.0.0.1
const PIN: u32 = 0x0a00_000b; // 10.0.0.11

fn keys(seed: u8) -> DirKeys {
    let mut k = DirKeys { enc: [0; 16], mac: [0; 32], salt: [0; 8] };
    for i in 0..16 {
        k.enc[i] = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    for i in 0..32 {
        k.mac[i] = seed.wrapping_mul(17).wrapping_add(0x40 + i as u8);
    }
    for i in 0..8 {
        k.salt[i] = seed.wrapping_mul(7).wrapping_add(0x90 + i as u8);
    }
    k
}

fn agent() -> Engine {
    let mut c = Config::new(Role::Agent);
    c.vin_net = 0x6440_0000;
    c.vin_prefix = 16;
    Engine::new(c)
}

fn gateway() -> Engine {
    let mut c = Config::new(Role::Gateway);
    c.ggr = GGR;
    c.pgr = PGR;
    Engine::new(c)
}

fn agent_spec(proto: u8) -> FlowSpec {
    FlowSpec { id: 1, proto, compat: false, tx: keys(1), rx: keys(2), pen: PEN, s: S, vin: VIN, d: D, ggr: GGR, t: T, pin: 0, ports: vec![] }
}

fn gw_spec(proto: u8) -> FlowSpec {
    FlowSpec { id: 7, proto, compat: false, tx: keys(2), rx: keys(1), pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: T, pin: PIN, ports: vec![] }
}

/// The home router: PEN:s -> GHR:m outbound, reverse inbound, with RFC 1624 updates only.
fn nat(p: &mut [u8], outbound: bool) {
    let ip = parse_ip(p, false).unwrap();
    let (aoff, poff) = if outbound { (12, ip.ihl) } else { (16, ip.ihl + 2) };
    let (na, np) = if outbound { (GHR, M) } else { (PEN, S) };
    let oa = be32(p, aoff);
    let op = be16(p, poff);
    put32(p, aoff, na);
    put16(p, poff, np);
    let c = be16(p, 10);
    put16(p, 10, csum_update32(c, oa, na));
    let coff = if ip.proto == PROTO_TCP { ip.ihl + 16 } else { ip.ihl + 6 };
    let c = be16(p, coff);
    let c = csum_update16(csum_update32(c, oa, na), op, np);
    put16(p, coff, c);
}

fn l4_ok(p: &[u8]) -> bool {
    let ip = parse_ip(p, false).unwrap();
    l4_checksum_ok(p, ip.ihl, ip.total, ip.proto)
}

fn payload_of(p: &[u8]) -> Vec<u8> {
    let ip = parse_ip(p, false).unwrap();
    if ip.proto == PROTO_TCP {
        let t = parse_tcp(p, &ip).unwrap();
        p[t.payload..t.end].to_vec()
    } else {
        let u = parse_udp(p, &ip).unwrap();
        p[u.payload..u.end].to_vec()
    }
}

fn mss_of(p: &[u8]) -> Option<u16> {
    let ip = parse_ip(p, false).unwrap();
    let t = parse_tcp(p, &ip).unwrap();
    let o = &p[t.off + 20..t.off + t.hlen];
    for (i, k, l) in tcp_options(o) {
        if k == 2 && l == 4 {
            return Some(be16(o, i + 2));
        }
    }
    None
}

const SYN_OPTS: [u8; 20] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

struct Pair {
    a: Engine,
    g: Engine,
}

impl Pair {
    fn tcp() -> Pair {
        let mut a = agent();
        let mut g = gateway();
        a.add_flow(&agent_spec(PROTO_TCP), 1).unwrap();
        g.add_flow(&gw_spec(PROTO_TCP), 1).unwrap();
        Pair { a, g }
    }
    fn udp() -> Pair {
        let mut a = agent();
        let mut g = gateway();
        a.add_flow(&agent_spec(PROTO_UDP), 1).unwrap();
        g.add_flow(&gw_spec(PROTO_UDP), 1).unwrap();
        Pair { a, g }
    }
    /// App on EN -> IN. Returns (wire packet after NAT, packet delivered to IN).
    fn up(&mut self, mut p: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        assert_eq!(self.a.process(&mut p, Hook::Out, Handle::Memory, 2), Verdict::Accept);
        assert!(l4_ok(&p));
        nat(&mut p, true);
        assert!(l4_ok(&p));
        let wire = p.clone();
        let v = self.g.process(&mut p, Hook::In, Handle::Memory, 2);
        assert_eq!(v, Verdict::Accept, "gateway in: {:?}", self.g.stats);
        assert!(l4_ok(&p));
        (wire, p)
    }
    /// IN -> app on EN.
    fn down(&mut self, mut p: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        assert_eq!(self.g.process(&mut p, Hook::Out, Handle::Memory, 2), Verdict::Accept);
        assert!(l4_ok(&p));
        let wire = p.clone();
        nat(&mut p, false);
        let v = self.a.process(&mut p, Hook::In, Handle::Memory, 2);
        assert_eq!(v, Verdict::Accept, "agent in: {:?}", self.a.stats);
        assert!(l4_ok(&p));
        (wire, p)
    }
}

#[test]
fn tcp_all_rewrite_directions_through_nat() {
    let mut pr = Pair::tcp();
    // SYN from the app: PEN:s -> VIN:d
    let syn = build::tcp(PEN, S, VIN, D, 0x1000_0000, 0, TCP_SYN, &SYN_OPTS, b"");
    let (wire, at_in) = pr.up(syn);
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
    // Bound event
    let ev = pr.g.events.drain(..).collect::<Vec<_>>();
    assert!(matches!(ev.as_slice(), [Event::Bound { id: 7, t: T, ghr: GHR, m: M, pin: PIN, d: D, .. }]), "{:?}", ev);
    // SYN-ACK from IN
    let synack = build::tcp(PIN, D, PGR, T, 0x7000_0000, 0x1000_0001, TCP_SYN | TCP_ACK, &SYN_OPTS, b"");
    let (wire, at_en) = pr.down(synack);
    let ip = parse_ip(&wire, false).unwrap();
    assert_eq!((ip.src, ip.dst, ip.total), (GGR, GHR, 20 + 20 + 20 + 16));
    let ip = parse_ip(&at_en, false).unwrap();
    let te = parse_tcp(&at_en, &ip).unwrap();
    assert_eq!((ip.src, te.sport, ip.dst, te.dport), (VIN, D, PEN, S));
    assert_eq!(mss_of(&at_en), Some(1460 - 16));
    // Data both ways
    let data = b"GET / HTTP/1.1\r\nHost: intra1\r\n\r\n".to_vec();
    let p = build::tcp(PEN, S, VIN, D, 0x1000_0001, 0x7000_0001, TCP_ACK | TCP_PSH, &[], &data);
    let (wire, at_in) = pr.up(p);
    assert_ne!(payload_of(&wire), data);
    assert_eq!(payload_of(&at_in), data);
    assert_eq!(wire.len(), 20 + 20 + 16 + data.len());
    let reply = vec![0x42u8; 1400];
    let p = build::tcp(PIN, D, PGR, T, 0x7000_0001, 0x1000_0001 + data.len() as u32, TCP_ACK, &[], &reply);
    let (wire, at_en) = pr.down(p);
    assert_ne!(payload_of(&wire), reply);
    assert_eq!(payload_of(&at_en), reply);
    // Bare ACK, FIN, RST all carry and verify the MAC.
    for fl in [TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK] {
        let p = build::tcp(PEN, S, VIN, D, 0x1000_0001 + data.len() as u32, 0x7000_0001 + 1400, fl, &[], b"");
        let (wire, _) = pr.up(p);
        assert_eq!(wire.len(), 20 + 20 + 16);
    }
    let fs = pr.g.flow(7).unwrap();
    assert_eq!(fs.state, FlowState::Closing);
    assert!(fs.c.pkts_in >= 5 && fs.c.pkts_out >= 2);
}

#[test]
fn tampering_is_detected_on_every_field() {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 5000, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 9000, 5001, TCP_SYN | TCP_ACK, &[], b""));
    let p = build::tcp(PEN, S, VIN, D, 5001, 9001, TCP_ACK, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], b"hello");
    let mut wire = p.clone();
    assert_eq!(pr.a.process(&mut wire, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    nat(&mut wire, true);
    let ihl = 20;
    // seq, ack, flags, window, urgent, an option byte, payload, MAC
    let spots = [ihl + 4, ihl + 8, ihl + 13, ihl + 14, ihl + 18, ihl + 26, wire.len() - 1, wire.len() - 6];
    for &i in spots.iter() {
        let mut q = wire.clone();
        q[i] ^= 0x01;
        fix_l4_checksum(&mut q, 20, wire.len(), PROTO_TCP);
        let before = pr.g.stats.verify_failed;
        assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 3), Verdict::Drop("verify-failed"), "byte {}", i);
        assert_eq!(pr.g.stats.verify_failed, before + 1);
    }
    // The MAC option's last byte
    let mut q = wire.clone();
    let l = q.len();
    q[l - 5 - 1] ^= 0x80;
    fix_l4_checksum(&mut q, 20, l, PROTO_TCP);
    assert_eq!(pr.g.process(&mut q, Hook::In, Handle::Memory, 3), Verdict::Drop("verify-failed"));
    // Stripped option: plain TCP to a reserved port is dropped.
    let mut plain = build::tcp(GHR, M, GGR, T, 5001, 9001, TCP_ACK, &[], b"hello");
    assert_eq!(pr.g.process(&mut plain, Hook::In, Handle::Memory, 3), Verdict::Drop("verify-failed"));
    // The untampered one still passes; events are rate-limited (one per second per flow).
    let mut ok = wire.clone();
    assert_eq!(pr.g.process(&mut ok, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let vf: Vec<_> = pr.g.events.iter().filter(|e| matches!(e, Event::VerifyFailed { .. })).collect();
    assert_eq!(vf.len(), 1);
    assert_eq!(pr.g.flow(7).unwrap().c.verify_failed, 10);
}

#[test]
fn wrap_retransmission_and_resegmentation() {
    let mut pr = Pair::tcp();
    let isn: u32 = 0xffff_fc00; // 1024 bytes before the wrap
    pr.up(build::tcp(PEN, S, VIN, D, isn, 0, TCP_SYN, &[], b""));
    pr.down(build::tcp(PIN, D, PGR, T, 77, isn.wrapping_add(1), TCP_SYN | TCP_ACK, &[], b""));
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    // One segment that straddles the 2^32 wrap.
    let seq0 = isn.wrapping_add(1);
    let (w_whole, at_in) = pr.up(build::tcp(PEN, S, VIN, D, seq0, 78, TCP_ACK, &[], &data[..1400]));
    assert_eq!(payload_of(&at_in), data[..1400].to_vec());
    // Retransmission: identical wire bytes.
    let (w_again, _) = pr.up(build::tcp(PEN, S, VIN, D, seq0, 78, TCP_ACK, &[], &data[..1400]));
    assert_eq!(w_whole, w_again);
    // Re-segmented retransmission (600 + 800) gives the same ciphertext bytes.
    let (w1, i1) = pr.up(build::tcp(PEN, S, VIN, D, seq0, 78, TCP_ACK, &[], &data[..600]));
    let (w2, i2) = pr.up(build::tcp(PEN, S, VIN, D, seq0.wrapping_add(600), 78, TCP_ACK, &[], &data[600..1400]));
    let mut ct = payload_of(&w1);
    ct.extend(payload_of(&w2));
    assert_eq!(ct, payload_of(&w_whole));
    assert_eq!(payload_of(&i1), data[..600].to_vec());
    assert_eq!(payload_of(&i2), data[600..1400].to_vec());
    // After the wrap, sequence numbers are small again but the positions are 2^32 + x.
    let seq_after = seq0.wrapping_add(1400);
    assert!(seq_after < 1000);
    let (w3, i3) = pr.up(build::tcp(PEN, S, VIN, D, seq_after, 78, TCP_ACK, &[], &data[1400..3000]));
    assert_eq!(payload_of(&i3), data[1400..3000].to_vec());
    assert_eq!(pr.a.flow(1).map(|f| f.state), Some(FlowState::Established));
    // A late retransmission from before the wrap still uses the old SNE and still verifies.
    let (w_late, i_late) = pr.up(build::tcp(PEN, S, VIN, D, seq0.wrapping_add(100), 78, TCP_ACK, &[], &data[100..200]));
    assert_eq!(payload_of(&w_late), payload_of(&w_whole)[100..200].to_vec());
    assert_eq!(payload_of(&i_late), data[100..200].to_vec());
    // No keystream reuse across the wrap: same plaintext at seq x before and 2^32 + x after.
    let x = seq_after; // after wrap, ext = 2^32 + x
    let mut k = pccom::Dir::new(&keys(1)).unwrap();
    let mut a = vec![0u8; 64];
    let mut b = vec![0u8; 64];
    assert!(k.aes.apply(x as u64, &mut a));
    assert!(k.aes.apply((1u64 << 32) + x as u64, &mut b));
    assert_ne!(a, b);
    let _ = w3;
}

#[test]
fn seq_track_extension() {
    let mut t = pccom::SeqTrack::default();
    t.update(0xffff_fff0);
    assert_eq!(t.extend(0xffff_fff8), 0xffff_fff8);
    assert_eq!(t.extend(0x10), (1u64 << 32) | 0x10);
    t.update((1u64 << 32) | 0x10);
    assert_eq!(t.extend(0xffff_ff00), 0xffff_ff00); // retransmission before the wrap
    assert_eq!(t.extend(0x20), (1u64 << 32) | 0x20);
    t.update(0xffff_ff00); // older: no change
    assert_eq!(t.sne, 1);
}

#[test]
fn udp_both_ways_with_replay_window() {
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
    // Replay of the same datagram is dropped.
    let mut again = wire.clone();
    assert_eq!(pr.g.process(&mut again, Hook::In, Handle::Memory, 3), Verdict::Drop("verify-failed"));
    assert_eq!(pr.g.stats.replay, 1);
    let (_, at_en) = pr.down(build::udp(PIN, D, PGR, T, b"answer"));
    assert_eq!(payload_of(&at_en), b"answer".to_vec());
    let ip = parse_ip(&at_en, false).unwrap();
    assert_eq!((ip.src, ip.dst), (VIN, PEN));
    // Out-of-order within the window is accepted once.
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
        assert_eq!(pr.g.process(&mut p, Hook::In, Handle::Memory, 3), Verdict::Drop("verify-failed"));
    }
}

#[test]
fn replay_window_rules() {
    let mut r = pccom::Replay::default();
    assert!(!r.check(0));
    r.update(1);
    assert!(!r.check(1));
    r.update(5000);
    assert!(!r.check(1));
    assert!(r.check(5000 - 900));
    assert!(!r.check(5000 - pccom::REPLAY_WINDOW));
    r.update(4999);
    assert!(!r.check(4999));
    assert!(r.check(5001));
}

#[test]
fn reservation_rules() {
    let mut g = gateway();
    let mut spec = gw_spec(PROTO_TCP);
    spec.ports = vec![22, 443];
    g.add_flow(&spec, 1).unwrap();
    let mut a = agent();
    a.add_flow(&agent_spec(PROTO_TCP), 1).unwrap(); // d = 80: not allowed
    let mut p = build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    let mut q = p.clone();
    assert_eq!(g.process(&mut q, Hook::In, Handle::Memory, 1), Verdict::Drop("port-denied"));
    // Wrong keys
    let mut wrong = agent_spec(PROTO_TCP);
    wrong.tx = keys(9);
    wrong.d = 22;
    let mut a2 = agent();
    a2.add_flow(&wrong, 1).unwrap();
    let mut p = build::tcp(PEN, S, VIN, 22, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(a2.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
    // A non-SYN cannot bind
    let mut a3 = agent();
    let mut ok = agent_spec(PROTO_TCP);
    ok.d = 22;
    a3.add_flow(&ok, 1).unwrap();
    let mut p = build::tcp(PEN, S, VIN, 22, 1, 5, TCP_ACK, &[], b"x");
    assert_eq!(a3.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
    // Unknown port, wrong destination address
    let mut p = build::tcp(GHR, M, GGR, T + 1, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Drop("no-flow"));
    // The right SYN binds; afterwards another source is refused.
    let mut p = build::tcp(PEN, S, VIN, 22, 100, 0, TCP_SYN, &[], b"");
    assert_eq!(a3.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    nat(&mut p, true);
    let mut p2 = p.clone();
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    assert_eq!(g.stats.bound, 1);
    put32(&mut p2, 12, GHR + 1);
    fix_ip_checksum(&mut p2, 20);
    assert_eq!(g.process(&mut p2, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
    assert_eq!(g.stats.wrong_source, 1);
    // LAN side: only PIN:d may send to PGR:t
    let mut l = build::tcp(PIN + 1, 22, PGR, T, 1, 101, TCP_SYN | TCP_ACK, &[], b"");
    assert_eq!(g.process(&mut l, Hook::Out, Handle::Memory, 1), Verdict::Drop("wrong-source"));
}

#[test]
fn held_release_fail_and_expiry() {
    let mut a = agent();
    let syn = build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b"");
    let mut p = syn.clone();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    let mut p = syn.clone();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    assert_eq!(a.events.len(), 1);
    assert!(matches!(a.events[0], Event::Held { proto: PROTO_TCP, src: PEN, sport: S, dst: VIN, dport: D }));
    // Not in the VIN range: dropped, never passed untranslated.
    let mut other = build::tcp(PEN, S, 0x0808_0808, 443, 1, 0, TCP_SYN, &[], b"");
    assert_eq!(a.process(&mut other, Hook::Out, Handle::Memory, 1), Verdict::Drop("no-flow"));
    // Release by adding the flow.
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
    // Per-flow bound
    let mut a = agent();
    a.cfg.max_held_per_flow = 3;
    for i in 0..5 {
        let mut p = build::udp(PEN, S, VIN, 53, &[i]);
        let v = a.process(&mut p, Hook::Out, Handle::Memory, 1);
        assert_eq!(v, if i < 3 { Verdict::Held } else { Verdict::Drop("held-overflow") });
    }
    // Fail with ICMP port unreachable toward the application.
    let n = a.fail_held((PROTO_UDP, PEN, S, VIN, 53), FailMode::PortUnreachable);
    assert_eq!(n, 3);
    let inj: Vec<&OutItem> = a.outbox.iter().filter(|o| o.injected).collect();
    assert_eq!(inj.len(), 1);
    let icmp = inj[0].bytes.as_ref().unwrap();
    let ip = parse_ip(icmp, false).unwrap();
    assert_eq!((ip.proto, ip.src, ip.dst, icmp[20], icmp[21]), (PROTO_ICMP, VIN, PEN, 3, 3));
    assert!(l4_checksum_ok(icmp, 20, ip.total, PROTO_ICMP));
    // TCP: RST toward the application
    let mut p = syn.clone();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Held);
    a.outbox.clear();
    assert_eq!(a.fail_held((PROTO_TCP, PEN, S, VIN, D), FailMode::Reset), 1);
    let rst = a.outbox.iter().find(|o| o.injected).unwrap().bytes.clone().unwrap();
    let ip = parse_ip(&rst, false).unwrap();
    let t = parse_tcp(&rst, &ip).unwrap();
    assert_eq!((ip.src, t.sport, ip.dst, t.dport, t.flags, t.ack), (VIN, D, PEN, S, TCP_RST | TCP_ACK, 2));
    assert!(l4_ok(&rst));
    // Expiry of held packets
    let mut p = syn.clone();
    assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1000), Verdict::Held);
    a.sweep(1000 + a.cfg.timeouts.held, 10);
    assert_eq!(a.held_count(), 0);
    assert!(a.events.iter().any(|e| matches!(e, Event::HeldExpired { count: 1, .. })));
}

#[test]
fn flow_expiry_by_state() {
    let mut pr = Pair::tcp();
    pr.g.cfg.timeouts.tcp_handshake = 100;
    pr.g.cfg.timeouts.reservation = 50;
    let mut g2 = gateway();
    g2.cfg.timeouts.reservation = 50;
    let mut s = gw_spec(PROTO_UDP);
    s.id = 9;
    g2.add_flow(&s, 1).unwrap();
    g2.sweep(40, 100);
    assert_eq!(g2.flow_count(), 1);
    g2.sweep(60, 100);
    assert_eq!(g2.flow_count(), 0);
    assert!(matches!(g2.events[0], Event::Expired { id: 9, proto: PROTO_UDP, t: T, state: "reserved" }));
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &[], b""));
    // bound at t=2; handshake timeout 100
    pr.g.sweep(90, 10);
    assert_eq!(pr.g.flow_count(), 1);
    pr.g.sweep(103, 10);
    assert_eq!(pr.g.flow_count(), 0);
    // removing frees the port for a new reservation
    pr.g.add_flow(&gw_spec(PROTO_TCP), 200).unwrap();
}

#[test]
fn icmp_errors_are_translated() {
    let mut pr = Pair::udp();
    pr.up(build::udp(PEN, S, VIN, D, b"ping"));
    // IN answers "port unreachable" quoting PGR:t -> PIN:d
    let quoted = build::udp(PGR, T, PIN, D, b"ping");
    let mut l4 = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&quoted[..28]);
    let mut icmp = build::ipv4(PROTO_ICMP, PIN, PGR, &l4);
    assert_eq!(pr.g.process(&mut icmp, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (GGR, GHR));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    let q = &icmp[28..];
    assert_eq!((be32(q, 12), be16(q, 20), be32(q, 16), be16(q, 22)), (GHR, M, GGR, T));
    // Agent side: after the home NAT, the error quotes PEN:s -> GGR:t; "fragmentation needed".
    let quoted = build::udp(PEN, S, GGR, T, b"ping");
    let mut l4 = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0xdc];
    l4.extend_from_slice(&quoted[..28]);
    let mut icmp = build::ipv4(PROTO_ICMP, GGR, PEN, &l4);
    assert_eq!(pr.a.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (VIN, PEN));
    assert_eq!(be16(&icmp, 26), 1500 - 20);
    let q = &icmp[28..];
    assert_eq!((be32(q, 12), be16(q, 20), be32(q, 16), be16(q, 22)), (PEN, S, VIN, D));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    // Gateway, from the internet: a router's "fragmentation needed" about our download, quoting
    // GGR:t -> GHR:m, goes to IN as PGR -> PIN quoting PIN:d -> PGR:t with the MTU lowered.
    let quoted = build::udp(GGR, T, GHR, M, b"pong");
    let mut l4 = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0x78];
    l4.extend_from_slice(&quoted[..28]);
    let mut icmp = build::ipv4(PROTO_ICMP, 0xc000_0201, GGR, &l4);
    assert_eq!(pr.g.process(&mut icmp, Hook::In, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst, be16(&icmp, 26)), (PGR, PIN, 1400 - 20));
    let q = &icmp[28..];
    assert_eq!((be32(q, 12), be16(q, 20), be32(q, 16), be16(q, 22)), (PIN, D, PGR, T));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    // Agent, from EN's own stack: port unreachable about a download, quoting VIN:d -> PEN:s,
    // leaves as PEN -> GGR quoting GGR:t -> PEN:s.
    let quoted = build::udp(VIN, D, PEN, S, b"late");
    let mut l4 = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&quoted[..28]);
    let mut icmp = build::ipv4(PROTO_ICMP, PEN, VIN, &l4);
    assert_eq!(pr.a.process(&mut icmp, Hook::Out, Handle::Memory, 3), Verdict::Accept);
    let ip = parse_ip(&icmp, false).unwrap();
    assert_eq!((ip.src, ip.dst), (PEN, GGR));
    let q = &icmp[28..];
    assert_eq!((be32(q, 12), be16(q, 20), be32(q, 16), be16(q, 22)), (GGR, T, PEN, S));
    assert!(l4_checksum_ok(&icmp, 20, ip.total, PROTO_ICMP));
    // ICMP that quotes no translated flow, and echo, pass unchanged.
    let mut echo = build::ipv4(PROTO_ICMP, GGR, PEN, &[8, 0, 0, 0, 0, 1, 0, 1]);
    let before = echo.clone();
    assert_eq!(pr.a.process(&mut echo, Hook::In, Handle::Memory, 3), Verdict::Accept);
    assert_eq!(echo, before);
    assert_eq!(pr.a.stats.icmp_translated, 2);
}

#[test]
fn compat_mode_survives_nat_and_is_length_preserving() {
    let mut a = agent();
    let mut g = gateway();
    let mut s = agent_spec(PROTO_TCP);
    s.compat = true;
    a.add_flow(&s, 1).unwrap();
    let mut r = gw_spec(PROTO_TCP);
    r.compat = true;
    r.ports = vec![D];
    g.add_flow(&r, 1).unwrap();
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
    let mut bad = p.clone();
    assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept);
    assert_eq!(payload_of(&p), data);
    let l = bad.len();
    bad[l - 1] ^= 1;
    assert_eq!(g.process(&mut bad, Hook::In, Handle::Memory, 1), Verdict::Drop("verify-failed"));
}

#[test]
fn punt_rules_deliver_and_take_verdicts() {
    let mut c = Config::new(Role::Agent);
    c.vin_net = 0x6440_0000;
    c.vin_prefix = 16;
    c.punt.push(PuntRule { hook: Hook::In, proto: PROTO_UDP, sport: Some(53), dport: None });
    let mut a = Engine::new(c);
    let ans = build::udp(0x0808_0808, 53, PEN, 5353, b"dns answer");
    let mut p = ans.clone();
    let v = a.process(&mut p, Hook::In, Handle::Memory, 1);
    let id = match v {
        Verdict::Punted(id) => id,
        _ => panic!("{:?}", v),
    };
    assert!(matches!(&a.events[0], Event::Punt { bytes, .. } if *bytes == ans));
    let mut rep = ans.clone();
    let l = rep.len();
    rep[l - 1] = b'X';
    assert!(a.punt_verdict(id, true, Some(&rep[..5]), 0).is_err());
    let mut p = ans.clone();
    let id2 = match a.process(&mut p, Hook::In, Handle::Memory, 1) {
        Verdict::Punted(i) => i,
        v => panic!("{:?}", v),
    };
    a.outbox.clear();
    assert_eq!(a.punt_verdict(id2, true, Some(&rep), 0), Ok(true));
    let o = a.outbox.pop().unwrap();
    let b = o.bytes.unwrap();
    assert_eq!(b[l - 1], b'X');
    assert!(l4_ok(&b));
    assert_eq!(a.punt_verdict(id2, true, None, 0), Ok(false));
}

#[test]
fn sack_is_trimmed_when_options_are_full() {
    let mut pr = Pair::tcp();
    pr.up(build::tcp(PEN, S, VIN, D, 1, 0, TCP_SYN, &SYN_OPTS, b""));
    pr.down(build::tcp(PIN, D, PGR, T, 500, 2, TCP_SYN | TCP_ACK, &[], b""));
    // NOP NOP TS(10) NOP NOP SACK 3 blocks (26) = 40 bytes
    let mut o = vec![1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 26];
    o.extend((0..24).map(|i| i as u8));
    assert_eq!(o.len(), 40);
    let (wire, at_in) = pr.up(build::tcp(PEN, S, VIN, D, 2, 501, TCP_ACK, &o, b""));
    let ip = parse_ip(&wire, false).unwrap();
    assert!(parse_tcp(&wire, &ip).unwrap().hlen <= 60);
    let ip = parse_ip(&at_in, false).unwrap();
    let t = parse_tcp(&at_in, &ip).unwrap();
    let kinds: Vec<u8> = tcp_options(&at_in[t.off + 20..t.off + t.hlen]).map(|x| x.1).filter(|k| *k != 1).collect();
    assert_eq!(kinds, vec![8]);
}

#[test]
fn fragments_and_malformed_are_dropped_and_counted() {
    let mut pr = Pair::udp();
    let mut p = build::udp(PEN, S, VIN, D, b"frag");
    p[6] = 0x20; // MF
    fix_ip_checksum(&mut p, 20);
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Drop("fragment"));
    assert_eq!(pr.a.stats.fragments, 1);
    let mut p = vec![0x45, 0, 0];
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Drop("malformed"));
    assert_eq!(pr.a.stats.malformed, 1);
}

/// Golden packets: fixed keys and inputs, exact protected bytes. A second implementation that
/// follows docs/pccom.md must produce the same bytes (these vectors are quoted there).
#[test]
fn golden_packets() {
    let mut a = agent();
    a.add_flow(&agent_spec(PROTO_TCP), 1).unwrap();
    let mut syn = build::tcp(PEN, S, VIN, D, 0x0102_0304, 0, TCP_SYN, &[2, 4, 0x05, 0xb4], b"");
    assert_eq!(a.process(&mut syn, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    let mut data = build::tcp(PEN, S, VIN, D, 0x0102_0305, 0x0a0b_0c0d, TCP_ACK | TCP_PSH, &[], b"hello, gsra");
    assert_eq!(a.process(&mut data, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    let mut u = agent();
    u.add_flow(&agent_spec(PROTO_UDP), 1).unwrap();
    let mut dg = build::udp(PEN, S, VIN, D, b"udp payload");
    assert_eq!(u.process(&mut dg, Hook::Out, Handle::Memory, 1), Verdict::Accept);
    let h = |v: &[u8]| v.iter().map(|b| format!("{:02x}", b)).collect::<String>();
    if std::env::var("GSRA_PRINT_GOLDEN").is_ok() {
        println!("syn  {}\ndata {}\nudp  {}", h(&syn), h(&data), h(&dg));
    }
    assert_eq!(h(&syn), GOLDEN_SYN);
    assert_eq!(h(&data), GOLDEN_DATA);
    assert_eq!(h(&dg), GOLDEN_UDP);
    // Independent recomputation of the data packet from the documented layout.
    let k = keys(1);
    let ct = &data[40 + 16..];
    let mut pt = ct.to_vec();
    let pos: u64 = 0x0102_0305;
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&k.salt);
    iv[8..].copy_from_slice(&(pos / 16).to_be_bytes());
    let mut aes = crate::crypto::AesCtr::new(&k.enc, &[0; 8]).unwrap();
    assert!(aes.apply_iv(&iv, (pos % 16) as usize, &mut pt));
    assert_eq!(pt, b"hello, gsra".to_vec());
    let mut mi = vec![0x01u8];
    mi.extend_from_slice(&0x0102_0305u64.to_be_bytes());
    mi.extend_from_slice(&0x0a0b_0c0du64.to_be_bytes());
    mi.push(TCP_ACK | TCP_PSH);
    mi.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]); // window, urgent, len(other options) = 0
    mi.extend_from_slice(&hex("fd104753"));
    mi.extend_from_slice(ct);
    let tag = crate::crypto::hmac_sha256(&k.mac, &[&mi]).unwrap();
    assert_eq!(&data[40 + 4..40 + 16], &tag[..12]);
    // UDP: MAC = HMAC(0x02 || d || ctr48 || ciphertext)
    let l = dg.len();
    let mut mi = vec![0x02u8];
    mi.extend_from_slice(&dg[l - 20..l - 12]);
    mi.extend_from_slice(&dg[28..l - 20]);
    let tag = crate::crypto::hmac_sha256(&k.mac, &[&mi]).unwrap();
    assert_eq!(&dg[l - 12..], &tag[..12]);
}

const GOLDEN_SYN: &str = "450000401234400040062ad0c0a8010acb0071019c404e210102030400000000b002faf0885b0000020405a4fd144753010000504c6596748c7a2c4961239640";
const GOLDEN_DATA: &str = "450000431234400040062acdc0a8010acb0071019c404e21010203050a0b0c0d9018faf0950c0000fd10475357ad327e75850ecf2236769e71a3111f6198bfae0bbc42";
const GOLDEN_UDP: &str = "4500003b1234400040112acac0a8010acb0071019c404e210027fce161aac8353b65a536ae6ba600500000000000016106c974e8a43adf688d08de";

#[test]
fn new_connection_on_same_tuple_gets_new_keys() {
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

#[test]
fn queue_threads_share_one_engine() {
    use std::sync::{Arc, Mutex};
    // Two threads (like two NFQUEUE queues) protect packets of two flows through
    // classify -> CryptoJob::run (flow lock only) -> finish; a third verifies at the gateway.
    let mut a = agent();
    let mut g = gateway();
    for (i, s) in [(1u32, S), (2, S + 1)] {
        let mut spec = agent_spec(PROTO_UDP);
        spec.id = i;
        spec.s = s;
        spec.t = T + i as u16;
        a.add_flow(&spec, 1).unwrap();
        let mut r = gw_spec(PROTO_UDP);
        r.id = i;
        r.t = T + i as u16;
        g.add_flow(&r, 1).unwrap();
    }
    let a = Arc::new(Mutex::new(a));
    let out = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = [S, S + 1]
        .iter()
        .map(|&sport| {
            let a = a.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for n in 0..2000u32 {
                    let mut p = build::udp(PEN, sport, VIN, D, &n.to_be_bytes());
                    let step = a.lock().unwrap().classify(&mut p, Hook::Out, Handle::Memory, 5);
                    let v = match step {
                        Step::Done(v) => v,
                        Step::Crypto(job) => {
                            let o = job.run(&mut p);
                            a.lock().unwrap().finish(&job, o, &p)
                        }
                    };
                    assert_eq!(v, Verdict::Accept);
                    out.lock().unwrap().push(p);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let a = a.lock().unwrap();
    assert_eq!(a.stats.translated_out, 4000);
    assert_eq!(a.flow(1).unwrap().c.pkts_out, 2000);
    let pkts = std::mem::take(&mut *out.lock().unwrap());
    for mut p in pkts {
        nat(&mut p, true);
        assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 6), Verdict::Accept);
    }
    assert_eq!(g.stats.translated_in, 4000);
    assert_eq!(g.stats.verify_failed, 0);
}

/// The gateway's FTP ALG path: every IN -> EN segment of a flow to an ALG port is punted with its
/// flow id; a verdict may change the payload length, and sequence/ack numbers (and SACK edges)
/// are adjusted for the rest of the flow, in both directions, retransmissions included.
#[test]
fn alg_punts_and_sequence_adjustment() {
    const FTP: u16 = 21;
    let mut a = agent();
    let mut gc = Config::new(Role::Gateway);
    gc.ggr = GGR;
    gc.pgr = PGR;
    gc.alg_ports = vec![FTP];
    let mut g = Engine::new(gc);
    a.add_flow(&FlowSpec { d: FTP, ..agent_spec(PROTO_TCP) }, 1).unwrap();
    g.add_flow(&gw_spec(PROTO_TCP), 1).unwrap();
    let mut pr = Pair { a, g };
    // IN -> EN through the ALG: the punt, then the verdict (with an optional replacement payload).
    fn down_alg(pr: &mut Pair, p: Vec<u8>, new_payload: Option<&[u8]>) -> Vec<u8> {
        let mut q = p.clone();
        let id = match pr.g.process(&mut q, Hook::Out, Handle::Memory, 2) {
            Verdict::Punted(id) => id,
            v => panic!("not punted: {:?}", v),
        };
        assert!(matches!(pr.g.events.last(), Some(Event::Punt { flow: Some(7), hook: Hook::Out, .. })));
        let rep = new_payload.map(|np| {
            let ip = parse_ip(&p, false).unwrap();
            let t = parse_tcp(&p, &ip).unwrap();
            build::tcp(ip.src, t.sport, ip.dst, t.dport, t.seq, t.ack, t.flags, &[], np)
        });
        pr.g.outbox.clear();
        assert_eq!(pr.g.punt_verdict(id, true, rep.as_deref(), 2), Ok(true));
        let mut w = pr.g.outbox.pop().unwrap().bytes.expect("translated");
        assert!(l4_ok(&w));
        nat(&mut w, false);
        assert_eq!(pr.a.process(&mut w, Hook::In, Handle::Memory, 2), Verdict::Accept, "{:?}", pr.a.stats);
        w
    }
    // EN -> IN through the ALG: verified and translated first, then punted; the verdict keeps the length.
    fn up_alg(pr: &mut Pair, mut p: Vec<u8>) -> Vec<u8> {
        assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 2), Verdict::Accept);
        nat(&mut p, true);
        let id = match pr.g.process(&mut p, Hook::In, Handle::Memory, 2) {
            Verdict::Punted(id) => id,
            v => panic!("not punted: {:?}", v),
        };
        match pr.g.events.last() {
            Some(Event::Punt { flow: Some(7), hook: Hook::In, bytes, .. }) => assert_eq!(*bytes, p, "the ALG gets the translated packet"),
            e => panic!("{:?}", e),
        }
        let ip = parse_ip(&p, false).unwrap();
        assert_eq!((ip.src, ip.dst), (PGR, PIN));
        pr.g.outbox.clear();
        assert_eq!(pr.g.punt_verdict(id, true, None, 2), Ok(true));
        let w = pr.g.outbox.pop().unwrap().bytes.expect("passed");
        assert!(l4_ok(&w));
        w
    }
    let seq_of = |p: &[u8]| {
        let ip = parse_ip(p, false).unwrap();
        parse_tcp(p, &ip).unwrap().seq
    };
    let ack_of = |p: &[u8]| {
        let ip = parse_ip(p, false).unwrap();
        parse_tcp(p, &ip).unwrap().ack
    };
    let (c0, s0) = (0x1000_0000u32, 0xffff_ff00u32); // the server's numbers wrap during the test
    pr.up(build::tcp(PEN, S, VIN, FTP, c0, 0, TCP_SYN, &SYN_OPTS, b""));
    down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s0, c0 + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b""), None);
    let banner = b"220 (vsFTPd 3.0.3)\r\n";
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s0 + 1, c0 + 1, TCP_ACK | TCP_PSH, &[], banner), None);
    assert_eq!(seq_of(&at_en), s0 + 1, "no rewrite yet: numbers unchanged");
    let pasv = b"227 Entering Passive Mode (10,0,0,11,195,80).\r\n";
    let vin = b"227 Entering Passive Mode (198,19,230,117,195,80).\r\n";
    let delta = (vin.len() - pasv.len()) as u32;
    let s_pasv = s0 + 1 + banner.len() as u32;
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s_pasv, c0 + 7, TCP_ACK | TCP_PSH, &[], pasv), Some(vin));
    assert_eq!(payload_of(&at_en), vin.to_vec(), "EN reads the rewritten reply");
    assert_eq!(seq_of(&at_en), s_pasv, "the rewritten segment itself keeps its number");
    // The server's next segment is shifted by the growth.
    let next = b"150 Here comes the directory listing.\r\n";
    let s_next = s_pasv + pasv.len() as u32;
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s_next, c0 + 7, TCP_ACK | TCP_PSH, &[], next), None);
    assert_eq!(seq_of(&at_en), s_next.wrapping_add(delta), "later segments shifted by {}", delta);
    // A retransmitted 227, rewritten again the same way, is not counted twice.
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s_pasv, c0 + 7, TCP_ACK | TCP_PSH, &[], pasv), Some(vin));
    assert_eq!(seq_of(&at_en), s_pasv);
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s_next, c0 + 7, TCP_ACK | TCP_PSH, &[], next), None);
    assert_eq!(seq_of(&at_en), s_next.wrapping_add(delta));
    // A retransmitted banner (before the rewrite) keeps its number.
    let at_en = down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, s0 + 1, c0 + 1, TCP_ACK | TCP_PSH, &[], banner), None);
    assert_eq!(seq_of(&at_en), s0 + 1);
    // EN acknowledges in its numbers; IN gets its own back. SACK edges likewise.
    let en_next = s_next.wrapping_add(delta) + next.len() as u32;
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, c0 + 7, en_next, TCP_ACK, &[], b""));
    assert_eq!(ack_of(&at_in), s_next + next.len() as u32, "the ack is shifted back");
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, c0 + 7, s_pasv, TCP_ACK, &[], b""));
    assert_eq!(ack_of(&at_in), s_pasv, "an ack up to the rewritten segment is not shifted");
    let l = s_next.wrapping_add(delta);
    let r = l + next.len() as u32;
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&l.to_be_bytes());
    sack.extend_from_slice(&r.to_be_bytes());
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, c0 + 7, s_pasv, TCP_ACK, &sack, b""));
    let ip = parse_ip(&at_in, false).unwrap();
    let t = parse_tcp(&at_in, &ip).unwrap();
    let opts = &at_in[t.off + 20..t.off + t.hlen];
    let (i, _, _) = tcp_options(opts).find(|&(_, k, _)| k == 5).expect("SACK kept");
    assert_eq!((be32(opts, i + 2), be32(opts, i + 6)), (s_next, s_next + next.len() as u32), "SACK edges shifted back");
    // A replacement that is not the same segment is refused and the packet dropped.
    let p = build::tcp(PIN, FTP, PGR, T, s_next + 100, c0 + 7, TCP_ACK | TCP_PSH, &[], b"x");
    let mut q = p.clone();
    let id = match pr.g.process(&mut q, Hook::Out, Handle::Memory, 2) {
        Verdict::Punted(id) => id,
        v => panic!("{:?}", v),
    };
    let wrong = build::tcp(PIN, FTP, PGR, T, s_next + 101, c0 + 7, TCP_ACK | TCP_PSH, &[], b"x");
    pr.g.outbox.clear();
    assert!(pr.g.punt_verdict(id, true, Some(&wrong), 2).is_err());
    assert!(pr.g.outbox.pop().unwrap().bytes.is_none());
    // Flows to other ports are not punted.
    let st = pr.g.stats.punted;
    let mut p2 = Pair::tcp();
    p2.g.cfg.alg_ports = vec![FTP];
    p2.up(build::tcp(PEN, S, VIN, D, c0, 0, TCP_SYN, &SYN_OPTS, b""));
    p2.down(build::tcp(PIN, D, PGR, T, s0, c0 + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    assert_eq!(p2.g.stats.punted, 0);
    assert_eq!(st, 8 + 3, "every segment of the FTP flow after the SYN went through the ALG");
}
