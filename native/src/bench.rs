//! In-memory benchmark loop without N-API in between: each packet goes through agent `out`
//! (translate + encrypt + MAC) and gateway `in` (verify + decrypt + translate), as the NFQUEUE
//! backend would drive them (copy from the receive buffer, process in place).

use crate::engine::*;
use crate::pccom::DirKeys;
use crate::pkt::{build, TCP_ACK, TCP_PSH, TCP_SYN, PROTO_TCP};
use std::time::Instant;

fn k(seed: u8) -> DirKeys {
    DirKeys { enc: [seed; 16], mac: [seed.wrapping_add(1); 32], salt: [seed.wrapping_add(2); 8] }
}

fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    build::tcp(0xc0a8_010a, 40000, 0x6440_0005, 80, seq, 1, flags, &[], payload)
}

/// Runs for about `seconds`; returns (packets, elapsed seconds).
pub fn run(payload: usize, seconds: f64) -> Result<(u64, f64), String> {
    let mut c = Config::new(Role::Agent);
    c.vin_net = 0x6440_0000;
    c.vin_prefix = 16;
    let mut a = Engine::new(c);
    let mut c = Config::new(Role::Gateway);
    c.ggr = 0xcb00_7101;
    c.pgr = 0x0a00_0001;
    let mut g = Engine::new(c);
    a.add_flow(&FlowSpec { id: 1, proto: PROTO_TCP, compat: false, tx: k(1), rx: k(2), pen: 0xc0a8_010a, s: 40000, vin: 0x6440_0005, d: 80, ggr: 0xcb00_7101, t: 20001, pin: 0, ports: vec![] }, 1)?;
    g.add_flow(&FlowSpec { id: 1, proto: PROTO_TCP, compat: false, tx: k(2), rx: k(1), pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: 20001, pin: 0x0a00_000b, ports: vec![] }, 1)?;
    let mut syn = tcp(1000, TCP_SYN, &[]);
    if a.process(&mut syn, Hook::Out, Handle::Memory, 1) != Verdict::Accept || g.process(&mut syn, Hook::In, Handle::Memory, 1) != Verdict::Accept {
        return Err("bench handshake failed".into());
    }
    let ring: Vec<Vec<u8>> = (0..256u32).map(|i| tcp(1001 + i * payload as u32, TCP_ACK | TCP_PSH, &vec![(i as u8).wrapping_mul(7); payload])).collect();
    let mut buf: Vec<u8> = Vec::with_capacity(65536 + 128);
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        for p in ring.iter() {
            buf.clear();
            buf.extend_from_slice(p);
            if a.process(&mut buf, Hook::Out, Handle::Memory, 2) != Verdict::Accept || g.process(&mut buf, Hook::In, Handle::Memory, 2) != Verdict::Accept {
                return Err("bench packet not accepted".into());
            }
        }
        n += ring.len() as u64;
        let el = start.elapsed().as_secs_f64();
        if el >= seconds {
            return Ok((n, el));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_loop_runs() {
        let (n, s) = super::run(512, 0.01).unwrap();
        assert!(n > 0 && s > 0.0);
    }
}
