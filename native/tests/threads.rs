//! Two threads (as two NFQUEUE queues) share one engine: classify -> CryptoJob::run (flow lock
//! only) -> finish, on two flows at once, and every packet verifies at the gateway.

mod common;
use common::*;
use std::sync::{Arc, Mutex};

#[test]
fn queue_threads_share_one_engine() {
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

/// A queue thread looked a flow up (classify) and, before its crypto phase ran, TypeScript removed
/// the flow and added another that took its place in the engine: the packet is refused (no
/// flow), never protected under the new flow's keys, and the new flow's counters do not move.
#[test]
fn a_packet_whose_flow_was_replaced_between_lookup_and_crypto_is_refused() {
    let mut a = agent();
    a.add_flow(&agent_spec(PROTO_UDP), 1).unwrap();
    let mut p = build::udp(PEN, S, VIN, D, b"late");
    let job = match a.classify(&mut p, Hook::Out, Handle::Memory, 5) {
        Step::Crypto(job) => job,
        Step::Done(v) => panic!("no crypto job: {v:?}"),
    };
    assert!(a.remove_flow(1));
    let mut other = agent_spec(PROTO_UDP);
    other.id = 2;
    other.tx = keys(9);
    a.add_flow(&other, 1).unwrap();
    let o = job.run(&mut p);
    assert_eq!(a.finish(&job, o, &p), Verdict::Drop(Reason::NoFlow));
    assert_eq!(p, build::udp(PEN, S, VIN, D, b"late"), "the packet is untouched");
    assert_eq!(a.flow(2).unwrap().c.pkts_out, 0);
}
