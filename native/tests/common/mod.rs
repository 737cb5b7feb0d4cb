//! Fixtures shared by the integration tests: the lab's addresses, keys, engines for both roles,
//! a simulated home router, and an agent + gateway pair that passes packets through it.
#![allow(dead_code)] // each test binary uses its own part

pub use gsra_native::engine::*;
pub use gsra_native::pccom::DirKeys;
pub use gsra_native::pkt::build;
pub use gsra_native::pkt::*;

pub const PEN: u32 = 0xc0a8_010a; // 192.168.1.10
pub const S: u16 = 40000;
pub const VIN: u32 = 0x6440_0005; // 100.64.0.5
pub const D: u16 = 80;
pub const GGR: u32 = 0xcb00_7101; // 203.0.113.1
pub const T: u16 = 20001;
pub const GHR: u32 = 0xc633_6407; // 198.51.100.7
pub const M: u16 = 61000;
pub const PGR: u32 = 0x0a00_0001; // 10.0.0.1
pub const PIN: u32 = 0x0a00_000b; // 10.0.0.11

/// MSS 1460, SACK permitted, timestamps, window scale.
pub const SYN_OPTS: [u8; 20] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

pub fn keys(seed: u8) -> DirKeys {
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

pub fn agent_config() -> Config {
    let mut c = Config::new(Role::Agent);
    c.vin_net = 0x6440_0000;
    c.vin_prefix = 16;
    c
}

pub fn gateway_config() -> Config {
    let mut c = Config::new(Role::Gateway);
    c.ggr = GGR;
    c.pgr = PGR;
    c
}

pub fn agent() -> Engine {
    Engine::new(agent_config())
}

pub fn gateway() -> Engine {
    Engine::new(gateway_config())
}

/// The agent's VAT entry PEN:s -> VIN:d via GGR:t (id 1).
pub fn agent_spec(proto: u8) -> FlowSpec {
    FlowSpec { id: 1, proto, compat: false, tx: keys(1), rx: keys(2), pen: PEN, s: S, vin: VIN, d: D, ggr: GGR, t: T, pin: 0, ports: vec![] }
}

/// The gateway's reservation of t for PIN (id 7).
pub fn gw_spec(proto: u8) -> FlowSpec {
    FlowSpec { id: 7, proto, compat: false, tx: keys(2), rx: keys(1), pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: T, pin: PIN, ports: vec![] }
}

/// The home router: PEN:s -> GHR:m outbound, reverse inbound, with RFC 1624 updates only.
pub fn nat(p: &mut [u8], outbound: bool) {
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

pub fn l4_ok(p: &[u8]) -> bool {
    let ip = parse_ip(p, false).unwrap();
    l4_checksum_ok(p, ip.ihl, ip.total, ip.proto)
}

pub fn payload_of(p: &[u8]) -> Vec<u8> {
    let ip = parse_ip(p, false).unwrap();
    if ip.proto == PROTO_TCP {
        let t = parse_tcp(p, &ip).unwrap();
        p[t.payload..t.end].to_vec()
    } else {
        let u = parse_udp(p, &ip).unwrap();
        p[u.payload..u.end].to_vec()
    }
}

pub fn tcp_of(p: &[u8]) -> Tcp {
    let ip = parse_ip(p, false).unwrap();
    parse_tcp(p, &ip).unwrap()
}

pub fn mss_of(p: &[u8]) -> Option<u16> {
    let t = tcp_of(p);
    let o = &p[t.off + 20..t.off + t.hlen];
    for (i, k, l) in tcp_options(o) {
        if k == 2 && l == 4 {
            return Some(be16(o, i + 2));
        }
    }
    None
}

/// The id of a punted packet; panics on any other verdict.
pub fn punt_id(v: Verdict) -> u64 {
    match v {
        Verdict::Punted(id) => id,
        v => panic!("not punted: {:?}", v),
    }
}

/// An agent and a gateway with one flow between them (agent id 1, gateway id 7).
pub struct Pair {
    pub a: Engine,
    pub g: Engine,
}

impl Pair {
    pub fn new(mut a: Engine, mut g: Engine, agent: &FlowSpec, gateway: &FlowSpec) -> Pair {
        a.add_flow(agent, 1).unwrap();
        g.add_flow(gateway, 1).unwrap();
        Pair { a, g }
    }
    pub fn tcp() -> Pair {
        Pair::new(agent(), gateway(), &agent_spec(PROTO_TCP), &gw_spec(PROTO_TCP))
    }
    pub fn udp() -> Pair {
        Pair::new(agent(), gateway(), &agent_spec(PROTO_UDP), &gw_spec(PROTO_UDP))
    }
    /// App on EN -> IN. Returns (wire packet after NAT, packet delivered to IN).
    pub fn up(&mut self, mut p: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
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
    pub fn down(&mut self, mut p: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
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
