//! The engine's memory per flow, in Rust alone (no Node, no JavaScript buffers in the same heap):
//! gateway engines of 125 000 reservations each (one per public address GGR, as the bench's
//! flows-child.ts), half TCP and half UDP, then each bound by a real protected first packet (a SYN
//! or a datagram an agent engine made, its VAT entry removed right after). Prints the resident
//! memory per reservation and per bound flow, from /proc/self/statm. A measurement, not a check:
//! ignored by default, run it alone (its own process) in release mode:
//!
//!   cargo test --release --test flow_memory -- --ignored --nocapture
//!
//! GSRA_FLOWS sets the number of flows (default 1 000 000).

mod common;
use common::*;

const PER_ENGINE: usize = 125_000;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("statm resident");
    pages * 4096
}

fn keys_of(id: u32, dir: u8) -> DirKeys {
    let mut k = keys(dir);
    k.enc[..4].copy_from_slice(&id.to_be_bytes());
    k.mac[..4].copy_from_slice(&id.to_be_bytes());
    k
}

#[test]
#[ignore]
fn memory_per_flow() {
    let flows: usize = std::env::var("GSRA_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let base = rss();
    let mut engines: Vec<(u32, Engine)> = Vec::new();
    // (engine, id, proto, t)
    let mut all: Vec<(usize, u32, u8, u16)> = Vec::with_capacity(flows);
    let mut id = 1u32;
    let mut done = 0;
    while done < flows {
        let ggr = 0xcb00_7101 + engines.len() as u32;
        let mut c = gateway_config();
        c.ggr = ggr;
        engines.push((ggr, Engine::new(c)));
        let here = std::cmp::min(PER_ENGINE, flows - done);
        let e = engines.len() - 1;
        for k in 0..here {
            let tcp = k < here / 2;
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            let t = 1 + if tcp { k } else { k - (here + 1) / 2 } as u16;
            let spec = FlowSpec { id, proto, t, tx: keys_of(id, 2), rx: keys_of(id, 1), ..gw_spec(proto) };
            engines[e].1.add_flow(&spec, 1).unwrap();
            all.push((e, id, proto, t));
            id += 1;
            done += 1;
        }
    }
    let reserved = rss();
    let bytes = all.capacity() * std::mem::size_of::<(usize, u32, u8, u16)>();
    let mut a = agent();
    for (n, &(e, id, proto, t)) in all.iter().enumerate() {
        let (ggr, g) = &mut engines[e];
        let pen = 0xc0a8_0000 | (n as u32 >> 8);
        let s = 1024 + (n & 255) as u16 * 200;
        let d = if proto == PROTO_TCP { 443 } else { 53 };
        let spec = FlowSpec { id, proto, pen, s, vin: VIN, d, ggr: *ggr, t, tx: keys_of(id, 1), rx: keys_of(id, 2), ..agent_spec(proto) };
        a.add_flow(&spec, 1).unwrap();
        let mut p = if proto == PROTO_TCP { build::tcp(pen, s, VIN, d, 1000, 0, TCP_SYN, &[], b"") } else { build::udp(pen, s, VIN, d, &[1; 32]) };
        assert_eq!(a.process(&mut p, Hook::Out, Handle::Memory, 1), Verdict::Accept);
        nat(&mut p, true);
        assert_eq!(g.process(&mut p, Hook::In, Handle::Memory, 1), Verdict::Accept, "flow {id}");
        assert!(a.remove_flow(id));
        g.events.clear();
        g.outbox.clear();
    }
    let bound = rss();
    let n_bound: u64 = engines.iter().map(|(_, g)| g.stats.bound).sum();
    assert_eq!(n_bound, flows as u64);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "flows {} engines {}: reserved {:.0} MiB ({} B/reservation), bound {:.0} MiB ({} B/flow) (the test's own list of flows: {} B/flow)",
        flows,
        engines.len(),
        mib(reserved - base),
        (reserved - base - bytes as u64) / flows as u64,
        mib(bound - base),
        (bound - base - bytes as u64) / flows as u64,
        bytes / flows
    );
}
