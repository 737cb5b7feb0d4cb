//! Punts: packets handed to TypeScript and their verdicts — punt rules (the agent's DNS answers)
//! and the gateway's ALG path, where every segment of an FTP control flow is punted with its flow
//! id and a verdict may change the payload length: sequence/ack numbers and SACK edges are then
//! adjusted for the rest of the flow, in both directions, retransmissions included.

mod common;
use common::*;

fn dns_agent() -> Engine {
    let mut c = agent_config();
    c.punt.push(PuntRule { hook: Hook::In, proto: PROTO_UDP, sport: Some(53), dport: None });
    Engine::new(c)
}

fn dns_answer() -> Vec<u8> {
    build::udp(0x0808_0808, 53, PEN, 5353, b"dns answer")
}

/// The answer with its last payload byte replaced (same length).
fn rewritten_answer() -> Vec<u8> {
    let mut rep = dns_answer();
    let l = rep.len();
    rep[l - 1] = b'X';
    rep
}

fn punted(a: &mut Engine) -> u64 {
    let mut p = dns_answer();
    punt_id(a.process(&mut p, Hook::In, Handle::Memory, 1))
}

/// The agent sees the DNS queries that leave (hook out, dport 53), but a query to a VIN is
/// translated like any packet to a VIN: it never becomes a punt whose accept would let it leave
/// untranslated.
#[test]
fn an_outbound_query_is_punted_unless_it_goes_to_a_vin() {
    let mut c = agent_config();
    c.punt.push(PuntRule { hook: Hook::Out, proto: PROTO_UDP, sport: None, dport: Some(53) });
    let mut a = Engine::new(c);
    let mut q = build::udp(PEN, 5353, 0x0808_0808, 53, b"dns query");
    punt_id(a.process(&mut q, Hook::Out, Handle::Memory, 1));
    let mut v = build::udp(PEN, 5353, VIN, 53, b"dns query");
    match a.process(&mut v, Hook::Out, Handle::Memory, 1) {
        Verdict::Held => {}
        other => panic!("a query to a VIN must be held for translation, got {:?}", other),
    }
}

#[test]
fn a_packet_matching_a_punt_rule_is_punted_with_its_bytes() {
    let mut a = dns_agent();
    punted(&mut a);
    assert!(matches!(&a.events[0], Event::Punt { bytes, .. } if *bytes == dns_answer()));
}

#[test]
fn a_rule_punt_replacement_of_another_length_is_refused() {
    let mut a = dns_agent();
    let id = punted(&mut a);
    assert!(a.punt_verdict(id, true, Some(&rewritten_answer()[..5]), 0).is_err());
}

#[test]
fn a_rule_punt_replacement_passes_with_its_checksums_rewritten() {
    let mut a = dns_agent();
    let id = punted(&mut a);
    a.outbox.clear();
    let rep = rewritten_answer();
    assert_eq!(a.punt_verdict(id, true, Some(&rep), 0), Ok(true));
    let b = a.outbox.pop().unwrap().bytes.unwrap();
    assert_eq!(b[rep.len() - 1], b'X');
    assert!(l4_ok(&b));
}

#[test]
fn a_punt_is_answered_once() {
    let mut a = dns_agent();
    let id = punted(&mut a);
    assert_eq!(a.punt_verdict(id, true, Some(&rewritten_answer()), 0), Ok(true));
    assert_eq!(a.punt_verdict(id, true, None, 0), Ok(false));
}

// The gateway's FTP ALG ----------------------------------------------------------------------

const FTP: u16 = 21;
/// EN's and IN's initial sequence numbers (IN's wrap during the exchange).
const C0: u32 = 0x1000_0000;
const S0: u32 = 0xffff_ff00;
const BANNER: &[u8] = b"220 (vsFTPd 3.0.3)\r\n";
const PASV: &[u8] = b"227 Entering Passive Mode (10,0,0,11,195,80).\r\n";
const PASV_VIN: &[u8] = b"227 Entering Passive Mode (198,19,230,117,195,80).\r\n";
const NEXT: &[u8] = b"150 Here comes the directory listing.\r\n";
const DELTA: u32 = (PASV_VIN.len() - PASV.len()) as u32;
const S_PASV: u32 = S0.wrapping_add(1 + BANNER.len() as u32);
const S_NEXT: u32 = S_PASV.wrapping_add(PASV.len() as u32);

/// An agent with a flow to IN's FTP port and a gateway that runs its ALG on port 21, after the
/// handshake (the SYN-ACK already went through the ALG).
fn ftp_pair() -> Pair {
    let mut gc = gateway_config();
    gc.alg_ports = vec![FTP];
    let mut pr = Pair::new(agent(), Engine::new(gc), &FlowSpec { d: FTP, ..agent_spec(PROTO_TCP) }, &gw_spec(PROTO_TCP));
    pr.up(build::tcp(PEN, S, VIN, FTP, C0, 0, TCP_SYN, &SYN_OPTS, b""));
    down_alg(&mut pr, build::tcp(PIN, FTP, PGR, T, S0, C0 + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b""), None);
    pr
}

/// IN -> EN through the ALG: the punt, then the verdict (with an optional replacement payload).
/// Returns what the application on EN receives.
fn down_alg(pr: &mut Pair, p: Vec<u8>, new_payload: Option<&[u8]>) -> Vec<u8> {
    let mut q = p.clone();
    let id = punt_id(pr.g.process(&mut q, Hook::Out, Handle::Memory, 2));
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

/// EN -> IN through the ALG: verified and translated first, then punted; the verdict keeps the
/// length. Returns what IN receives.
fn up_alg(pr: &mut Pair, mut p: Vec<u8>) -> Vec<u8> {
    assert_eq!(pr.a.process(&mut p, Hook::Out, Handle::Memory, 2), Verdict::Accept);
    nat(&mut p, true);
    let id = punt_id(pr.g.process(&mut p, Hook::In, Handle::Memory, 2));
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

fn from_in(seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    build::tcp(PIN, FTP, PGR, T, seq, ack, TCP_ACK | TCP_PSH, &[], payload)
}

/// The flow after the banner and the 227 reply, rewritten to a longer VIN literal.
fn after_pasv_rewrite() -> Pair {
    let mut pr = ftp_pair();
    down_alg(&mut pr, from_in(S0 + 1, C0 + 1, BANNER), None);
    down_alg(&mut pr, from_in(S_PASV, C0 + 7, PASV), Some(PASV_VIN));
    pr
}

#[test]
fn an_alg_flow_segment_without_a_rewrite_keeps_its_numbers() {
    let mut pr = ftp_pair();
    let at_en = down_alg(&mut pr, from_in(S0 + 1, C0 + 1, BANNER), None);
    assert_eq!(tcp_of(&at_en).seq, S0 + 1, "no rewrite yet: numbers unchanged");
}

#[test]
fn an_alg_rewrite_reaches_en_and_keeps_the_segment_number() {
    let mut pr = ftp_pair();
    down_alg(&mut pr, from_in(S0 + 1, C0 + 1, BANNER), None);
    let at_en = down_alg(&mut pr, from_in(S_PASV, C0 + 7, PASV), Some(PASV_VIN));
    assert_eq!(payload_of(&at_en), PASV_VIN.to_vec(), "EN reads the rewritten reply");
    assert_eq!(tcp_of(&at_en).seq, S_PASV, "the rewritten segment itself keeps its number");
}

#[test]
fn later_segments_toward_en_are_shifted_by_the_growth() {
    let mut pr = after_pasv_rewrite();
    let at_en = down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    assert_eq!(tcp_of(&at_en).seq, S_NEXT.wrapping_add(DELTA), "later segments shifted by {}", DELTA);
}

#[test]
fn a_retransmitted_rewrite_is_not_counted_twice() {
    let mut pr = after_pasv_rewrite();
    down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    let at_en = down_alg(&mut pr, from_in(S_PASV, C0 + 7, PASV), Some(PASV_VIN));
    assert_eq!(tcp_of(&at_en).seq, S_PASV);
    let at_en = down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    assert_eq!(tcp_of(&at_en).seq, S_NEXT.wrapping_add(DELTA));
}

#[test]
fn a_retransmission_from_before_the_rewrite_keeps_its_number() {
    let mut pr = after_pasv_rewrite();
    let at_en = down_alg(&mut pr, from_in(S0 + 1, C0 + 1, BANNER), None);
    assert_eq!(tcp_of(&at_en).seq, S0 + 1);
}

#[test]
fn en_acks_are_shifted_back_for_in() {
    let mut pr = after_pasv_rewrite();
    down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    // EN acknowledges in its numbers; IN gets its own back.
    let en_next = S_NEXT.wrapping_add(DELTA) + NEXT.len() as u32;
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, C0 + 7, en_next, TCP_ACK, &[], b""));
    assert_eq!(tcp_of(&at_in).ack, S_NEXT + NEXT.len() as u32, "the ack is shifted back");
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, C0 + 7, S_PASV, TCP_ACK, &[], b""));
    assert_eq!(tcp_of(&at_in).ack, S_PASV, "an ack up to the rewritten segment is not shifted");
}

#[test]
fn en_sack_edges_are_shifted_back_for_in() {
    let mut pr = after_pasv_rewrite();
    down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    let l = S_NEXT.wrapping_add(DELTA);
    let r = l + NEXT.len() as u32;
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&l.to_be_bytes());
    sack.extend_from_slice(&r.to_be_bytes());
    let at_in = up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, C0 + 7, S_PASV, TCP_ACK, &sack, b""));
    let t = tcp_of(&at_in);
    let opts = &at_in[t.off + 20..t.off + t.hlen];
    let (i, _, _) = tcp_options(opts).find(|&(_, k, _)| k == 5).expect("SACK kept");
    assert_eq!((be32(opts, i + 2), be32(opts, i + 6)), (S_NEXT, S_NEXT + NEXT.len() as u32), "SACK edges shifted back");
}

#[test]
fn an_alg_replacement_that_is_another_segment_is_refused_and_the_packet_dropped() {
    let mut pr = after_pasv_rewrite();
    let mut q = from_in(S_NEXT + 100, C0 + 7, b"x");
    let id = punt_id(pr.g.process(&mut q, Hook::Out, Handle::Memory, 2));
    let wrong = from_in(S_NEXT + 101, C0 + 7, b"x");
    pr.g.outbox.clear();
    assert!(pr.g.punt_verdict(id, true, Some(&wrong), 2).is_err());
    assert!(pr.g.outbox.pop().unwrap().bytes.is_none());
}

#[test]
fn every_segment_of_an_alg_flow_after_the_syn_goes_through_the_alg() {
    let mut pr = after_pasv_rewrite();
    up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, C0 + 7, S_PASV, TCP_ACK, &[], b""));
    // SYN-ACK, banner, 227 toward EN; one ack toward IN.
    assert_eq!(pr.g.stats.punted, 3 + 1);
}

#[test]
fn flows_to_other_ports_are_not_punted() {
    let mut p2 = Pair::tcp();
    p2.g.cfg.alg_ports = vec![FTP];
    p2.up(build::tcp(PEN, S, VIN, D, C0, 0, TCP_SYN, &SYN_OPTS, b""));
    p2.down(build::tcp(PIN, D, PGR, T, S0, C0 + 1, TCP_SYN | TCP_ACK, &SYN_OPTS, b""));
    assert_eq!(p2.g.stats.punted, 0);
}

#[test]
fn a_restarted_gateway_keeps_the_alg_adjustment_from_the_flow_snapshot() {
    let mut pr = after_pasv_rewrite();
    // EN acknowledges the rewritten reply: its binding commits (a snapshot is of a bound flow)
    let en_ack = S_PASV.wrapping_add(PASV_VIN.len() as u32);
    up_alg(&mut pr, build::tcp(PEN, S, VIN, FTP, C0 + 7, en_ack, TCP_ACK, &[], b""));
    let snap = pr.g.snapshots().pop().expect("the ALG flow has a snapshot").1;
    let mut gc = gateway_config();
    gc.alg_ports = vec![FTP];
    pr.g = Engine::new(gc);
    pr.g.import_flow(&gw_spec(PROTO_TCP), &snap, 3).unwrap();
    let at_en = down_alg(&mut pr, from_in(S_NEXT, C0 + 7, NEXT), None);
    assert_eq!(tcp_of(&at_en).seq, S_NEXT.wrapping_add(DELTA), "still shifted by {} after the restart", DELTA);
}
