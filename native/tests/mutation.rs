//! Randomized mutation test of every parser and of the whole data path: at least 1,000,000
//! mutated inputs (GSRA_FUZZ_ITERS overrides), no panic allowed anywhere.

use gsra_native::engine::*;
use gsra_native::pccom::DirKeys;
use gsra_native::pkt::*;

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

fn keys(seed: u8) -> DirKeys {
    DirKeys { enc: [seed; 16], mac: [seed ^ 0x5a; 32], salt: [seed ^ 0xa5; 8] }
}

const PEN: u32 = 0xc0a8_010a;
const VIN: u32 = 0x6440_0005;
const GGR: u32 = 0xcb00_7101;
const PGR: u32 = 0x0a00_0001;
const PIN: u32 = 0x0a00_000b;

fn ipv4(proto: u8, src: u32, dst: u32, l4: &[u8], opts: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts.len();
    let mut b = vec![0u8; ihl + l4.len()];
    b[0] = 0x40 | (ihl / 4) as u8;
    let bl = b.len() as u16;
    put16(&mut b, 2, bl);
    b[8] = 64;
    b[9] = proto;
    put32(&mut b, 12, src);
    put32(&mut b, 16, dst);
    b[20..ihl].copy_from_slice(opts);
    b[ihl..].copy_from_slice(l4);
    fix_ip_checksum(&mut b, ihl);
    let t = b.len();
    fix_l4_checksum(&mut b, ihl, t, proto);
    b
}

fn tcp(src: u32, sp: u16, dst: u32, dp: u16, seq: u32, flags: u8, opts: &[u8], pl: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + opts.len() + pl.len()];
    put16(&mut l4, 0, sp);
    put16(&mut l4, 2, dp);
    put32(&mut l4, 4, seq);
    put32(&mut l4, 8, 1);
    l4[12] = (((20 + opts.len()) / 4) as u8) << 4;
    l4[13] = flags;
    put16(&mut l4, 14, 1000);
    l4[20..20 + opts.len()].copy_from_slice(opts);
    l4[20 + opts.len()..].copy_from_slice(pl);
    ipv4(PROTO_TCP, src, dst, &l4, &[])
}

fn udp(src: u32, sp: u16, dst: u32, dp: u16, pl: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + pl.len()];
    put16(&mut l4, 0, sp);
    put16(&mut l4, 2, dp);
    put16(&mut l4, 4, (8 + pl.len()) as u16);
    l4[8..].copy_from_slice(pl);
    ipv4(PROTO_UDP, src, dst, &l4, &[])
}

fn engines() -> (Engine, Engine) {
    let mut c = Config::new(Role::Agent);
    c.vin_net = 0x6440_0000;
    c.vin_prefix = 16;
    c.punt.push(PuntRule { hook: Hook::In, proto: PROTO_UDP, sport: Some(53), dport: None });
    let mut a = Engine::new(c);
    let mut c = Config::new(Role::Gateway);
    c.ggr = GGR;
    c.pgr = PGR;
    let mut g = Engine::new(c);
    for (i, proto) in [PROTO_TCP, PROTO_UDP].iter().enumerate() {
        let id = i as u32 + 1;
        a.add_flow(&FlowSpec { id, proto: *proto, compat: false, tx: keys(1), rx: keys(2), pen: PEN, s: 40000, vin: VIN, d: 80, ggr: GGR, t: 20001, pin: 0, ports: vec![] }, 1).unwrap();
        g.add_flow(&FlowSpec { id, proto: *proto, compat: false, tx: keys(2), rx: keys(1), pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: 20001, pin: PIN, ports: vec![] }, 1).unwrap();
    }
    a.add_flow(&FlowSpec { id: 3, proto: PROTO_TCP, compat: true, tx: keys(3), rx: keys(4), pen: PEN, s: 40001, vin: VIN, d: 22, ggr: GGR, t: 20002, pin: 0, ports: vec![] }, 1).unwrap();
    g.add_flow(&FlowSpec { id: 3, proto: PROTO_TCP, compat: true, tx: keys(4), rx: keys(3), pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: 20002, pin: PIN, ports: vec![22] }, 1).unwrap();
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
        udp(PEN, 40000, VIN, 80, b"datagram"),
        udp(PEN, 40000, VIN, 80, &[0u8; 1200]),
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
    out.push(udp(PIN, 80, PGR, 20001, b"reply"));
    out.push(udp(0x0808_0808, 53, PEN, 5353, b"\x12\x34\x81\x80 dns answer"));
    let quoted = udp(PGR, 20001, PIN, 80, b"q");
    let mut l4 = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&quoted[..28]);
    out.push(ipv4(PROTO_ICMP, PIN, PGR, &l4, &[]));
    let quoted = udp(PEN, 40000, GGR, 20001, b"q");
    let mut l4 = vec![3u8, 4, 0, 0, 0, 0, 5, 0xdc];
    l4.extend_from_slice(&quoted);
    out.push(ipv4(PROTO_ICMP, GGR, PEN, &l4, &[]));
    let quoted = udp(GGR, 20001, PEN, 40000, b"q");
    let mut l4 = vec![3u8, 4, 0, 0, 0, 0, 5, 0x78];
    l4.extend_from_slice(&quoted[..28]);
    out.push(ipv4(PROTO_ICMP, 0xc000_0201, GGR, &l4, &[]));
    let quoted = udp(VIN, 80, PEN, 40000, b"q");
    let mut l4 = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&quoted[..28]);
    out.push(ipv4(PROTO_ICMP, PEN, VIN, &l4, &[]));
    out.push(ipv4(PROTO_UDP, PEN, VIN, &[0x9c, 0x40, 0, 80, 0, 12, 0, 0, 1, 2, 3, 4], &[0x94, 4, 0, 0, 1, 0, 0, 0]));
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
    let (mut a, mut g) = engines();
    let (mut a2, _) = engines();
    let seeds = seeds(&mut a2);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
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
    println!("GSRA_MUTATION_INPUTS={} accepted={}", iters, accepted);
    assert!(iters >= 1 && accepted > 0);
}
