//! Randomized mutation test of every parser and of the whole data path: at least 1,000,000
//! mutated inputs (GSRA_FUZZ_ITERS overrides), no panic allowed anywhere. Seeded: the seed is
//! printed (`GSRA_FUZZ_SEED=n`, again if the test fails) and GSRA_FUZZ_SEED=n replays a run.

mod common;
use common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// GSRA_FUZZ_SEED if set, else a fresh one from the clock (never 0: xorshift would stay at 0).
fn seed() -> u64 {
    if let Some(s) = std::env::var("GSRA_FUZZ_SEED").ok().and_then(|v| v.parse::<u64>().ok()) {
        return s.max(1);
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    (t ^ (std::process::id() as u64) << 32).max(1)
}

/// Prints the seed again if the test fails, so the failing run can be replayed.
struct SeedOnFailure(u64);
impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("mutation test failed: replay with GSRA_FUZZ_SEED={}", self.0);
        }
    }
}

fn tcp(src: u32, sp: u16, dst: u32, dp: u16, seq: u32, flags: u8, opts: &[u8], pl: &[u8]) -> Vec<u8> {
    build::tcp(src, sp, dst, dp, seq, 1, flags, opts, pl)
}

/// A datagram with IP options (IHL > 5), which the builders do not make.
fn udp_with_ip_options(src: u32, dst: u32, l4: &[u8], opts: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts.len();
    let mut b = vec![0u8; ihl + l4.len()];
    b[0] = 0x40 | (ihl / 4) as u8;
    let bl = b.len() as u16;
    put16(&mut b, 2, bl);
    b[8] = 64;
    b[9] = PROTO_UDP;
    put32(&mut b, 12, src);
    put32(&mut b, 16, dst);
    b[20..ihl].copy_from_slice(opts);
    b[ihl..].copy_from_slice(l4);
    fix_ip_checksum(&mut b, ihl);
    let t = b.len();
    fix_l4_checksum(&mut b, ihl, t, PROTO_UDP);
    b
}

/// An ICMP error (type 3) whose header ends with `rest`, quoting `quoted`.
fn icmp_error(src: u32, dst: u32, rest: [u8; 8], quoted: &[u8]) -> Vec<u8> {
    let mut l4 = rest.to_vec();
    l4.extend_from_slice(quoted);
    build::ipv4(PROTO_ICMP, src, dst, &l4)
}

fn engines() -> (Engine, Engine) {
    let mut c = agent_config();
    c.punt.push(PuntRule { hook: Hook::In, proto: PROTO_UDP, sport: Some(53), dport: None });
    let mut a = Engine::new(c);
    let mut g = gateway();
    for (i, proto) in [PROTO_TCP, PROTO_UDP].iter().enumerate() {
        let id = i as u32 + 1;
        a.add_flow(&FlowSpec { id, proto: *proto, ..agent_spec(*proto) }, 1).unwrap();
        g.add_flow(&FlowSpec { id, proto: *proto, ..gw_spec(*proto) }, 1).unwrap();
    }
    a.add_flow(&FlowSpec { id: 3, compat: true, tx: keys(3), rx: keys(4), s: 40001, d: 22, t: 20002, ..agent_spec(PROTO_TCP) }, 1).unwrap();
    g.add_flow(&FlowSpec { id: 3, compat: true, tx: keys(4), rx: keys(3), t: 20002, ports: vec![22], ..gw_spec(PROTO_TCP) }, 1).unwrap();
    (a, g)
}

fn seeds(a: &mut Engine) -> Vec<Vec<u8>> {
    let syn_opts = [2u8, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
    let mut plain = vec![
        tcp(PEN, 40000, VIN, 80, 1000, TCP_SYN, &syn_opts, b""),
        tcp(PEN, 40000, VIN, 80, 1001, TCP_ACK | TCP_PSH, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], &[0x41; 300]),
        tcp(PEN, 40000, VIN, 80, 1301, TCP_ACK | TCP_FIN, &[], b""),
        tcp(PEN, 40001, VIN, 22, 5, TCP_SYN, &[], b""),
        tcp(PEN, 40001, VIN, 22, 6, TCP_ACK, &[], b"compat"),
        build::udp(PEN, 40000, VIN, 80, b"datagram"),
        build::udp(PEN, 40000, VIN, 80, &[0u8; 1200]),
    ];
    let mut out = Vec::new();
    for p in plain.iter_mut() {
        let mut q = p.clone();
        if a.process(&mut q, Hook::Out, Handle::Memory, 2) == Verdict::Accept {
            out.push(q);
        }
    }
    assert!(out.len() >= 6, "seed protection failed");
    out.extend(plain);
    // LAN-side and inbound plain packets, ICMP errors, IP options.
    out.push(tcp(PIN, 80, PGR, 20001, 9000, TCP_SYN | TCP_ACK, &[2, 4, 5, 0xb4], b""));
    out.push(build::udp(PIN, 80, PGR, 20001, b"reply"));
    out.push(build::udp(0x0808_0808, 53, PEN, 5353, b"\x12\x34\x81\x80 dns answer"));
    out.push(icmp_error(PIN, PGR, [3, 3, 0, 0, 0, 0, 0, 0], &build::udp(PGR, 20001, PIN, 80, b"q")[..28]));
    out.push(icmp_error(GGR, PEN, [3, 4, 0, 0, 0, 0, 5, 0xdc], &build::udp(PEN, 40000, GGR, 20001, b"q")));
    out.push(icmp_error(0xc000_0201, GGR, [3, 4, 0, 0, 0, 0, 5, 0x78], &build::udp(GGR, 20001, PEN, 40000, b"q")[..28]));
    out.push(icmp_error(PEN, VIN, [3, 3, 0, 0, 0, 0, 0, 0], &build::udp(VIN, 80, PEN, 40000, b"q")[..28]));
    out.push(udp_with_ip_options(PEN, VIN, &[0x9c, 0x40, 0, 80, 0, 12, 0, 0, 1, 2, 3, 4], &[0x94, 4, 0, 0, 1, 0, 0, 0]));
    out
}

fn mutate(r: &mut Rng, p: &mut Vec<u8>) {
    let n = 1 + r.below(4);
    for _ in 0..n {
        let len = p.len();
        match r.below(10) {
            0 | 1 | 2 => {
                if len > 0 {
                    let i = r.below(len);
                    p[i] ^= 1 << r.below(8);
                }
            }
            3 => {
                if len > 0 {
                    let i = r.below(len);
                    p[i] = [0u8, 1, 2, 4, 5, 0x0f, 0x10, 0x40, 0x45, 0x7f, 0x80, 0xfd, 0xfe, 0xff][r.below(14)];
                }
            }
            4 => {
                let k = r.below(len + 1);
                p.truncate(k);
            }
            5 => {
                let k = r.below(64);
                for _ in 0..k {
                    p.push(r.next() as u8);
                }
            }
            6 => {
                // header length fields: IHL, total length, TCP data offset, UDP length
                if len >= 20 {
                    match r.below(4) {
                        0 => p[0] = 0x40 | (r.below(16) as u8),
                        1 => {
                            let v = r.below(70000) as u16;
                            put16(p, 2, v)
                        }
                        2 => {
                            if len > 32 {
                                p[32] = (r.below(16) as u8) << 4
                            }
                        }
                        _ => {
                            if len > 25 {
                                let v = r.below(1600) as u16;
                                put16(p, 24, v)
                            }
                        }
                    }
                }
            }
            7 => {
                // an option length byte somewhere in the TCP option area
                if len > 41 {
                    let i = 40 + r.below(std::cmp::min(len - 40, 40));
                    p[i] = r.below(48) as u8;
                }
            }
            8 => {
                // flags / fragment bits
                if len > 33 {
                    p[33] = r.next() as u8;
                }
                if len > 6 && r.below(4) == 0 {
                    p[6] ^= 0x20;
                }
            }
            _ => {
                // splice a random window of the packet onto itself
                if len > 4 {
                    let a = r.below(len);
                    let b = r.below(len);
                    let l = r.below(std::cmp::min(len - a.max(b), 32) + 1);
                    p.copy_within(a..a + l, b);
                }
            }
        }
    }
    // Half the time, repair checksums so mutations reach past the checksum checks.
    if r.below(2) == 0 && p.len() >= 20 {
        if let Ok(ip) = parse_ip(p, true) {
            fix_ip_checksum(p, ip.ihl);
        }
    }
}

fn parsers(p: &[u8]) {
    for trunc in [false, true] {
        if let Ok(ip) = parse_ip(p, trunc) {
            let _ = is_fragment(p);
            if let Ok(t) = parse_tcp(p, &ip) {
                for x in tcp_options(&p[t.off + 20..t.off + t.hlen]) {
                    let _ = x;
                }
            }
            let _ = parse_udp(p, &ip);
            let _ = parse_icmp_error(p, &ip);
            if ip.total <= p.len() && ip.ihl <= ip.total {
                let _ = l4_checksum_ok(p, ip.ihl, ip.total, ip.proto);
            }
        }
    }
    let _ = validate_tcp_options(p);
    for _ in tcp_options(p) {}
    let _ = synth_rst(p);
    let _ = synth_icmp_unreach(p, 3);
}

#[test]
fn mutation_million() {
    let iters: u64 = std::env::var("GSRA_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let seed = seed();
    println!("GSRA_FUZZ_SEED={}", seed);
    let _replay = SeedOnFailure(seed);
    let (mut a, mut g) = engines();
    let (mut a2, _) = engines();
    let seeds = seeds(&mut a2);
    let mut r = Rng(seed);
    let mut buf: Vec<u8> = Vec::with_capacity(70000);
    let mut accepted = 0u64;
    let mut now = 10u64;
    for i in 0..iters {
        let s = &seeds[(i as usize) % seeds.len()];
        buf.clear();
        buf.extend_from_slice(s);
        mutate(&mut r, &mut buf);
        parsers(&buf);
        let orig = buf.clone();
        for (eng, hook) in [(0usize, Hook::Out), (0, Hook::In), (1, Hook::Out), (1, Hook::In)] {
            buf.clear();
            buf.extend_from_slice(&orig);
            let e = if eng == 0 { &mut a } else { &mut g };
            if e.process(&mut buf, hook, Handle::Memory, now) == Verdict::Accept {
                accepted += 1;
                // What the engine lets through is always a well-formed packet.
                let ip = parse_ip(&buf, false).expect("accepted packet must parse");
                assert!(ip.total == buf.len());
            }
        }
        if i % 1024 == 0 {
            now += 1;
            a.sweep(now, 64);
            g.sweep(now, 64);
            a.outbox.clear();
            g.outbox.clear();
            a.events.clear();
            g.events.clear();
            // keep held/punt state bounded and exercised
            let _ = a.fail_held((PROTO_TCP, PEN, 40000, VIN, 81), FailMode::Reset);
            let _ = a.punt_verdict(i, true, None, 0);
        }
    }
    println!("GSRA_MUTATION_INPUTS={} accepted={} seed={}", iters, accepted, seed);
    assert!(iters >= 1 && accepted > 0);
}
